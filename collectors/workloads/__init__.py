"""Which workload a GPU process belongs to (pod, Slurm job, container, Jupyter kernel), and which GPUs a
workload holds with no process on them. See resolver.py; cgroup.py parses cgroup lines; names.py asks the
optional name sources (Docker API, kubelet log folders, scontrol, Jupyter server)."""

from gpuspend.collectors.workloads.resolver import ResolverConfig, WorkloadResolver, kernel_file

__all__ = ["ResolverConfig", "WorkloadResolver", "kernel_file"]
