"""Every Prometheus collector servicegroup exposes, registered on an injected registry.

Names and labels follow client-go / controller-runtime exactly where those libraries define
them, so existing dashboards and alerts work; ours are prefixed `servicegroup_`. Labels are
bounded: controller names, verbs, codes, resource kinds, NodeUnit label keys; never a grid,
pod or node name. No `*_created` series are exported.

A `Metrics` instance is a constructor argument of whatever records into it (no globals), and
tests build a fresh one per test on a fresh `CollectorRegistry`.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# client-go workqueue: ExponentialBuckets(10e-9, 10, 12).
WORKQUEUE_BUCKETS = tuple(1e-8 * 10**i for i in range(12))
# controller-runtime reconcile_time_seconds buckets.
RECONCILE_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8,
    0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30,
    40, 50, 60,
)  # fmt: skip
# client-go rest_client_request_duration_seconds buckets.
REST_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """All collectors, created once per process (or per test) on `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        wq = ("name", "controller")

        # --- client-go workqueue (as controller-runtime registers them)
        self.workqueue_depth = Gauge(
            "workqueue_depth", "Current depth of workqueue", wq, registry=r
        )
        self.workqueue_adds = Counter(
            "workqueue_adds", "Total number of adds handled by workqueue", wq, registry=r
        )
        self.workqueue_queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            wq,
            buckets=WORKQUEUE_BUCKETS,
            registry=r,
        )
        self.workqueue_work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            wq,
            buckets=WORKQUEUE_BUCKETS,
            registry=r,
        )
        self.workqueue_unfinished_work = Gauge(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been "
            "observed by work_duration. Large values indicate stuck threads. One can deduce "
            "the number of stuck threads by observing the rate at which this increases.",
            wq,
            registry=r,
        )
        self.workqueue_longest_running_processor = Gauge(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            wq,
            registry=r,
        )
        self.workqueue_retries = Counter(
            "workqueue_retries", "Total number of retries handled by workqueue", wq, registry=r
        )

        # --- controller-runtime
        self.reconcile_total = Counter(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            ("controller", "result"),
            registry=r,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            ("controller",),
            registry=r,
        )
        self.terminal_reconcile_errors = Counter(
            "controller_runtime_terminal_reconcile_errors",
            "Total number of terminal reconciliation errors per controller",
            ("controller",),
            registry=r,
        )
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ("controller",),
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.active_workers = Gauge(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            ("controller",),
            registry=r,
        )
        self.max_concurrent_reconciles = Gauge(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            ("controller",),
            registry=r,
        )

        # --- client-go leader election and REST client
        self.leader_election_master_status = Gauge(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates "
            "backup, 1 indicates master. 'name' is the string used to identify the lease.",
            ("name",),
            registry=r,
        )
        self.rest_client_requests = Counter(
            "rest_client_requests",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            ("code", "method", "host"),
            registry=r,
        )
        self.rest_client_request_duration = Histogram(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb, and host.",
            ("verb", "host"),
            buckets=REST_BUCKETS,
            registry=r,
        )

        # --- ours: informers
        self.informer_relists = Counter(
            "servicegroup_informer_relists",
            "Full lists made by reflectors (initial list included), per resource.",
            ("resource",),
            registry=r,
        )
        self.informer_watch_restarts = Counter(
            "servicegroup_informer_watch_restarts",
            "Watches restarted by reflectors, per resource and reason "
            "(timeout, eof, expired, error, inactive).",
            ("resource", "reason"),
            registry=r,
        )
        self.informer_cached_objects = Gauge(
            "servicegroup_informer_cached_objects",
            "Objects held in informer caches, per resource.",
            ("resource",),
            registry=r,
        )

        # --- ours: grids
        self.nodeunits = Gauge(
            "servicegroup_nodeunits",
            "NodeUnits currently known, per node label key used as a gridUniqKey.",
            ("key",),
            registry=r,
        )
        self.grid_children = Gauge(
            "servicegroup_grid_children",
            "Children (Deployments, StatefulSets, Services) owned by grids, per grid kind.",
            ("kind",),
            registry=r,
        )
        self.grid_children_ready = Gauge(
            "servicegroup_grid_children_ready",
            "Children whose workload is fully ready, per grid kind.",
            ("kind",),
            registry=r,
        )
        self.child_writes = Counter(
            "servicegroup_child_writes",
            "Writes of children and grid status, per grid kind and operation "
            "(apply, delete, status).",
            ("kind", "operation"),
            registry=r,
        )
        self.events = Counter(
            "servicegroup_events",
            "Kubernetes Events emitted (after deduplication), per type and reason.",
            ("type", "reason"),
            registry=r,
        )

        # --- ours: multi-cluster distribution (federation)
        self.federation_writes = Counter(
            "servicegroup_federation_writes",
            "Writes made by multi-cluster distribution, per side (hub, member), grid kind and "
            "operation (apply, delete, status, finalizer).",
            ("side", "kind", "operation"),
            registry=r,
        )
        self.federation_failures = Counter(
            "servicegroup_federation_failures",
            "Multi-cluster distribution failures, per side (hub, member) and reason.",
            ("side", "reason"),
            registry=r,
        )
        self.federation_clusters = Gauge(
            "servicegroup_federation_clusters",
            "Managed clusters: hub namespaces labelled clusters.clusternet.io/cluster-id.",
            registry=r,
        )
        self.federation_hub_connected = Gauge(
            "servicegroup_federation_hub_connected",
            "1 while this member cluster's hub session is synced and the hub answers, else 0.",
            registry=r,
        )
        self.federation_hub_sessions = Counter(
            "servicegroup_federation_hub_sessions",
            "Hub sessions started (the parent-cluster Secret was created or changed).",
            registry=r,
        )

        # --- ours: wrapper
        self.wrapper_watchers = Gauge(
            "servicegroup_wrapper_watchers",
            "Open watches served by the wrapper, per resource.",
            ("resource",),
            registry=r,
        )
        self.wrapper_events_sent = Counter(
            "servicegroup_wrapper_events_sent",
            "Watch events sent to the wrapper's clients, per resource and event type.",
            ("resource", "type"),
            registry=r,
        )
        self.wrapper_endpoints_kept = Gauge(
            "servicegroup_wrapper_endpoints_kept",
            "Endpoints of NodeUnit-local Services kept by the wrapper's filter.",
            registry=r,
        )
        self.wrapper_endpoints_dropped = Gauge(
            "servicegroup_wrapper_endpoints_dropped",
            "Endpoints of NodeUnit-local Services dropped by the wrapper's filter.",
            registry=r,
        )
        self.wrapper_upstream_relists = Counter(
            "servicegroup_wrapper_upstream_relists",
            "Full lists the wrapper made against the API server, per resource.",
            ("resource",),
            registry=r,
        )

        # --- ours: DNS helper
        self.dns_records = Gauge(
            "servicegroup_dns_records",
            "Host records in the servicegroup block of the hosts file.",
            registry=r,
        )
        self.dns_writes = Counter(
            "servicegroup_dns_writes",
            "Hosts-file writes (only made when the content changes).",
            registry=r,
        )
        self.dns_errors = Counter(
            "servicegroup_dns_errors",
            "Hosts-file write failures, per reason.",
            ("reason",),
            registry=r,
        )
