//! Who a process is, in OpenTelemetry's resource attributes (for the OTLP exporter): its service
//! name — the process's own `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` when set, else the
//! Go main module path, else the executable's name — and `process.*`, `host.*`, `container.id`
//! and the Kubernetes pod uid found in its cgroup path.
//!
//! Reading another process's environment needs the same right as reading its memory (root, or
//! CAP_SYS_PTRACE); without it the environment is left out and the fallbacks apply.

use crate::procfs::ProcFs;

/// What goroscope knows of a process besides `/proc` (from its Go build info), to name it.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoIdentity<'a> {
    /// The Go main module path (`example.com/api`), when known.
    pub main_module: Option<&'a str>,
    /// The Go version it was built with (`go1.26.8`), when it is Go.
    pub go_version: Option<&'a str>,
}

/// Environment variables a process's resource comes from.
const SERVICE_NAME_VARIABLE: &[u8] = b"OTEL_SERVICE_NAME=";
const RESOURCE_ATTRIBUTES_VARIABLE: &[u8] = b"OTEL_RESOURCE_ATTRIBUTES=";

/// The resource attributes of process `pid`, as (key, value) pairs, `service.name` first.
/// Fails only when the process is gone; what cannot be read is left out.
pub fn process_resource(
    procfs: &ProcFs,
    pid: u32,
    go: GoIdentity<'_>,
    host_name: &str,
) -> crate::error::Result<Vec<(String, String)>> {
    let info = procfs.process(pid)?;
    let dir = procfs.root().join(pid.to_string());
    let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
    let executable_path = std::fs::read_link(dir.join("exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let executable_name = executable_path
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty())
        .map_or_else(|| info.comm.clone(), str::to_string);

    let (mut from_env, env_service_name) = environment_attributes(&environ);
    let service_name = env_service_name
        .or_else(|| {
            from_env
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        })
        .or_else(|| go.main_module.map(str::to_string))
        .unwrap_or_else(|| executable_name.clone());
    from_env.retain(|(k, _)| k != "service.name");

    let mut attributes = vec![
        ("service.name".to_string(), service_name),
        ("process.pid".to_string(), pid.to_string()),
        ("process.executable.name".to_string(), executable_name),
    ];
    if !executable_path.is_empty() {
        attributes.push(("process.executable.path".to_string(), executable_path));
    }
    if let Some(version) = go.go_version {
        attributes.push(("process.runtime.name".to_string(), "go".to_string()));
        attributes.push(("process.runtime.version".to_string(), version.to_string()));
    }
    attributes.push(("host.name".to_string(), host_name.to_string()));
    attributes.push(("host.arch".to_string(), host_arch().to_string()));
    if let Some(id) = &info.container_id {
        attributes.push(("container.id".to_string(), id.clone()));
    }
    if let Some(uid) = pod_uid_from_cgroup(&info.cgroup) {
        attributes.push(("k8s.pod.uid".to_string(), uid));
    }
    // The process's own OTEL_RESOURCE_ATTRIBUTES come last and never replace what goroscope
    // read itself (a pid or an executable claimed in the environment is not believed).
    for (key, value) in from_env {
        if !attributes.iter().any(|(k, _)| *k == key) {
            attributes.push((key, value));
        }
    }
    Ok(attributes)
}

/// `OTEL_RESOURCE_ATTRIBUTES` pairs and `OTEL_SERVICE_NAME` from a NUL-separated environment.
fn environment_attributes(environ: &[u8]) -> (Vec<(String, String)>, Option<String>) {
    let mut pairs = Vec::new();
    let mut service_name = None;
    for variable in environ.split(|&b| b == 0) {
        if let Some(value) = variable.strip_prefix(SERVICE_NAME_VARIABLE) {
            let value = String::from_utf8_lossy(value).trim().to_string();
            if !value.is_empty() {
                service_name = Some(value);
            }
        } else if let Some(value) = variable.strip_prefix(RESOURCE_ATTRIBUTES_VARIABLE) {
            pairs = parse_resource_attributes(&String::from_utf8_lossy(value));
        }
    }
    (pairs, service_name)
}

/// `key1=value1,key2=value2` as the OpenTelemetry SDKs read `OTEL_RESOURCE_ATTRIBUTES`: values
/// percent-decoded, surrounding spaces trimmed, entries without `=` or with an empty key
/// skipped, the last of a repeated key kept.
pub fn parse_resource_attributes(text: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for entry in text.split(',') {
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        let value = percent_decode(value.trim());
        match pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value,
            None => pairs.push((key.to_string(), value)),
        }
    }
    pairs
}

/// `%XX` escapes decoded; a `%` not followed by two hex digits is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The Kubernetes pod uid in a cgroup path: `pod<uid>` in the cgroupfs driver
/// (`/kubepods/burstable/pod1f2e…/<container>`) or `…-pod<uid with _>.slice` in the systemd
/// driver (`kubepods-burstable-pod1f2e_…_.slice`), given with dashes.
pub fn pod_uid_from_cgroup(path: &str) -> Option<String> {
    path.split('/').find_map(|component| {
        let name = component.strip_suffix(".slice").unwrap_or(component);
        let at = name.rfind("pod")?;
        let uid = name[at + 3..].replace('_', "-");
        let is_uid = uid.len() == 36
            && uid.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        is_uid.then_some(uid)
    })
}

/// The host's architecture as OpenTelemetry names it (`amd64`, `arm64`, …).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfs::FakeTree;

    const POD: &str = "1f2e3d4c-5b6a-4789-9abc-def012345678";
    const CONTAINER: &str = "3f4c2a9e8b7d6c5f4e3d2c1b0a998877665544332211ffeeddccbbaa00112233";

    fn fake_process(tree: &FakeTree, pid: u32, environ: &[u8], cgroup: &str) {
        tree.write(
            &format!("{pid}/stat"),
            &format!("{pid} (api) S 1 {pid} {pid} 0 -1 0 0 0 0 0 1 1 0 0 20 0 3 0 777 1 1\n"),
        );
        tree.write(&format!("{pid}/comm"), "api\n");
        tree.write(&format!("{pid}/cgroup"), &format!("0::{cgroup}\n"));
        let path = tree.path().join(format!("{pid}/environ"));
        std::fs::write(&path, environ).unwrap();
        tree.symlink(
            &format!("{pid}/exe"),
            std::path::Path::new("/srv/bin/api-server"),
        );
    }

    fn get<'a>(attributes: &'a [(String, String)], key: &str) -> Option<&'a str> {
        attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_service_name_comes_from_the_environment_then_the_module_then_the_executable() {
        let tree = FakeTree::new("resource");
        let procfs = ProcFs::new(tree.path());
        let go = GoIdentity {
            main_module: Some("example.com/api"),
            go_version: Some("go1.26.8"),
        };
        let cgroup = format!(
            "/kubepods.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINER}.scope",
            POD.replace('-', "_")
        );
        fake_process(
            &tree,
            10,
            b"PATH=/bin\0OTEL_SERVICE_NAME=checkout\0OTEL_RESOURCE_ATTRIBUTES=service.name=ignored,deployment.environment=prod%2Ceu,process.pid=1\0",
            &cgroup,
        );
        let attributes = process_resource(&procfs, 10, go, "node-7").unwrap();
        assert_eq!(attributes[0], ("service.name".into(), "checkout".into()));
        assert_eq!(get(&attributes, "process.pid"), Some("10"));
        assert_eq!(
            get(&attributes, "process.executable.name"),
            Some("api-server")
        );
        assert_eq!(
            get(&attributes, "process.executable.path"),
            Some("/srv/bin/api-server")
        );
        assert_eq!(get(&attributes, "process.runtime.name"), Some("go"));
        assert_eq!(
            get(&attributes, "process.runtime.version"),
            Some("go1.26.8")
        );
        assert_eq!(get(&attributes, "host.name"), Some("node-7"));
        assert_eq!(get(&attributes, "host.arch"), Some(host_arch()));
        assert_eq!(get(&attributes, "container.id"), Some(CONTAINER));
        assert_eq!(get(&attributes, "k8s.pod.uid"), Some(POD));
        assert_eq!(get(&attributes, "deployment.environment"), Some("prod,eu"));
        assert_eq!(
            attributes
                .iter()
                .filter(|(k, _)| k == "process.pid")
                .count(),
            1,
            "the environment replaced the pid"
        );

        // OTEL_RESOURCE_ATTRIBUTES' service.name without OTEL_SERVICE_NAME.
        fake_process(
            &tree,
            11,
            b"OTEL_RESOURCE_ATTRIBUTES=service.name=payments\0",
            "/system.slice/api.service",
        );
        let attributes = process_resource(&procfs, 11, go, "node-7").unwrap();
        assert_eq!(get(&attributes, "service.name"), Some("payments"));
        assert_eq!(get(&attributes, "container.id"), None);
        assert_eq!(get(&attributes, "k8s.pod.uid"), None);

        // The Go main module, then the executable's name.
        fake_process(&tree, 12, b"HOME=/root\0", "/");
        let attributes = process_resource(&procfs, 12, go, "node-7").unwrap();
        assert_eq!(get(&attributes, "service.name"), Some("example.com/api"));
        let attributes = process_resource(&procfs, 12, GoIdentity::default(), "node-7").unwrap();
        assert_eq!(get(&attributes, "service.name"), Some("api-server"));
        assert_eq!(get(&attributes, "process.runtime.name"), None);

        assert!(process_resource(&procfs, 13, go, "node-7").is_err());
    }

    #[test]
    fn resource_attributes_parse_like_the_sdks() {
        assert_eq!(
            parse_resource_attributes(" a = 1 ,b=x%3Dy,=skip,novalue,a=2,c=%zz"),
            vec![
                ("a".to_string(), "2".to_string()),
                ("b".to_string(), "x=y".to_string()),
                ("c".to_string(), "%zz".to_string()),
            ]
        );
    }

    #[test]
    fn pod_uids_are_found_in_both_cgroup_drivers() {
        assert_eq!(
            pod_uid_from_cgroup(&format!("/kubepods/burstable/pod{POD}/{CONTAINER}")).as_deref(),
            Some(POD)
        );
        assert_eq!(
            pod_uid_from_cgroup(&format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/x.scope",
                POD.replace('-', "_")
            ))
            .as_deref(),
            Some(POD)
        );
        assert_eq!(pod_uid_from_cgroup("/system.slice/podman.service"), None);
        assert_eq!(pod_uid_from_cgroup("/user.slice/pod1234"), None);
    }
}
