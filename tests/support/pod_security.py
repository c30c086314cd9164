"""The Pod Security Standards' Baseline and Restricted checks on a pod spec, as Pod Security admission applies them.

No checker of its own installs from PyPI or npm (Kubernetes' is the Go module k8s.io/pod-security-admission), so the
controls are encoded here from the Kubernetes docs, "Pod Security Standards"
(https://kubernetes.io/docs/concepts/security/pod-security-standards/, kubernetes/website
content/en/docs/concepts/security/pod-security-standards.md): every Baseline control, then every Restricted one.
A field left out is judged as admission judges it: an unset pod-level value may be set on each container instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Spec = dict[str, Any]
LEVELS = ("privileged", "baseline", "restricted")

# Baseline, "Capabilities": adding any other is forbidden.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
# Baseline, "Sysctls": the safe set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
# Baseline, "SELinux": the types allowed.
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# Restricted, "Volume Types": the only ones allowed.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def _containers(spec: Spec) -> Iterator[Spec]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key, [])


def _baseline(spec: Spec, annotations: dict[str, str]) -> Iterator[str]:
    pod_sc = spec.get("securityContext", {})
    contexts = [("pod", pod_sc)] + [(c["name"], c.get("securityContext", {})) for c in _containers(spec)]
    for where, sc in contexts:
        if sc.get("windowsOptions", {}).get("hostProcess"):
            yield f"{where}: HostProcess"
        seccomp = sc.get("seccompProfile", {}).get("type")
        if seccomp == "Unconfined":
            yield f"{where}: seccompProfile Unconfined"
        apparmor = sc.get("appArmorProfile", {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            yield f"{where}: appArmorProfile {apparmor}"
        selinux = sc.get("seLinuxOptions", {})
        if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            yield f"{where}: seLinuxOptions {selinux}"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            yield f"pod: {key}"
    for volume in spec.get("volumes", []):
        if "hostPath" in volume:
            yield f"volume {volume['name']}: hostPath"
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            yield f"pod: sysctl {sysctl['name']}"
    for key, value in annotations.items():
        apparmor = key.startswith("container.apparmor.security.beta.kubernetes.io/")
        if apparmor and value != "runtime/default" and not value.startswith("localhost/"):
            yield f"annotation {key}: {value}"
    for container in _containers(spec):
        name, sc = container["name"], container.get("securityContext", {})
        if sc.get("privileged"):
            yield f"{name}: privileged"
        added = set(sc.get("capabilities", {}).get("add", [])) - BASELINE_CAPABILITIES
        if added:
            yield f"{name}: capabilities added {sorted(added)}"
        if sc.get("procMount", "Default") != "Default":
            yield f"{name}: procMount {sc['procMount']}"
        for port in container.get("ports", []):
            if port.get("hostPort", 0):
                yield f"{name}: hostPort {port['hostPort']}"


def _restricted(spec: Spec) -> Iterator[str]:
    pod_sc = spec.get("securityContext", {})
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            yield f"volume {volume['name']}: {sorted(kinds)} is not a restricted volume type"
    if pod_sc.get("runAsUser") == 0:
        yield "pod: runAsUser 0"
    if pod_sc.get("runAsNonRoot") is False:
        yield "pod: runAsNonRoot false"
    for container in _containers(spec):
        name, sc = container["name"], container.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"{name}: allowPrivilegeEscalation is not false"
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            yield f"{name}: runAsNonRoot is not true (pod or container)"
        if sc.get("runAsUser") == 0:
            yield f"{name}: runAsUser 0"
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield f"{name}: seccompProfile {seccomp} (RuntimeDefault or Localhost, on the pod or the container)"
        capabilities = sc.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            yield f"{name}: capabilities do not drop ALL"
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            yield f"{name}: capabilities add more than NET_BIND_SERVICE"


def violations(spec: Spec, level: str, annotations: dict[str, str] | None = None) -> list[str]:
    """What a pod with this spec breaks at this level (Pod Security admission refuses it unless the list is empty)."""
    if level not in LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r}: one of {LEVELS}")
    if level == "privileged":
        return []
    found = list(_baseline(spec, annotations or {}))
    if level == "restricted":
        found += _restricted(spec)
    return found
