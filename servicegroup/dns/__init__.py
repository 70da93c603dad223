"""The node-local hosts-file helper for StatefulSetGrid headless names."""
