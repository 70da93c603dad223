"""kubesim: an embedded, in-memory Kubernetes API server for tests, the demo and benchmarks.

Known limitation - no protobuf: kubesim reads and writes JSON and YAML only. kubectl 1.32's
generator commands (`kubectl create namespace|configmap|secret|serviceaccount|role|
clusterrolebinding|deployment|service ...`) build the object with client-go's typed
clientset, which sends it as `application/vnd.kubernetes.protobuf` unconditionally
(checked with `-v=8`): the POST is the command's first request, before any discovery or OpenAPI
download, so nothing kubesim advertises changes it, and kubectl does not retry a 415 with
JSON. Decoding those bodies would need the field numbers of every k8s.io/api message, which
nothing installed here provides. kubesim answers them 415 (UnsupportedMediaType) like a
server without protobuf support. Use the manifest forms instead - `kubectl create -f`,
`kubectl apply -f` (client- or server-side) or `--dry-run=client -o yaml | kubectl apply -f -`
- which send JSON. Responses are unaffected: every client that accepts protobuf also
accepts JSON, and gets JSON.
"""
