//! The deploy kit (`deploy/`): no container engine or cluster runs here, so the manifests are
//! parsed and the fields that matter checked; the ConfigMap's file is given to a real hub.

use std::time::Duration;

use tether_conformance::client::{Target, send};
use tether_conformance::hub::Hub;
use yaml_rust2::{Yaml, YamlLoader};

const EXE: &str = env!("CARGO_BIN_EXE_tether");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../deploy/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

fn yaml(path: &str) -> Yaml {
    YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
        .remove(0)
}

fn container(deployment: &Yaml) -> &Yaml {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// The drain window the Deployment gives the hub, in seconds.
fn drain_secs(c: &Yaml) -> i64 {
    let from_env = c["env"].as_vec().unwrap().iter().find_map(|e| {
        (e["name"].as_str() == Some("TETHER_DRAIN_SECS"))
            .then(|| e["value"].as_str()?.parse().ok())?
    });
    let from_args = c["args"]
        .as_vec()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("--drain-secs=")?.parse().ok());
    from_args.or(from_env).unwrap_or(10)
}

#[test]
fn the_deployment_probes_drains_and_waits_long_enough() {
    let d = yaml("k8s/deployment.yml");
    assert_eq!(d["kind"].as_str(), Some("Deployment"));
    let c = container(&d);
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/health/live")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/health/sse")
    );
    let pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_vec()
        .unwrap();
    assert_eq!(pre_stop[0].as_str(), Some("sleep"));
    let pre_stop: i64 = pre_stop[1].as_str().unwrap().parse().unwrap();
    assert!(
        pre_stop >= 5,
        "endpoints need time to drop the pod: {pre_stop}"
    );
    let drain = drain_secs(c);
    let grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    assert!(
        grace >= pre_stop + drain + 5,
        "terminationGracePeriodSeconds {grace} must cover preStop {pre_stop} + drain {drain} + a margin"
    );
    let args: Vec<&str> = c["args"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(args[0], "serve");
    assert!(args.contains(&"--config=/etc/tether/sse.yml"), "{args:?}");
    let port = c["ports"][0]["containerPort"].as_i64().unwrap();
    assert!(
        args.contains(&format!("--addr=0.0.0.0:{port}").as_str()),
        "{args:?}"
    );
    let sc = &d["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert!(sc["runAsUser"].as_i64().unwrap() > 0);
    // The config volume is the ConfigMap, mounted where --config reads it.
    let cm = yaml("k8s/configmap-sse.yml");
    let volumes = d["spec"]["template"]["spec"]["volumes"].as_vec().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == cm["metadata"]["name"])
    );
    let mounts = c["volumeMounts"].as_vec().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"].as_str() == Some("/etc/tether/sse.yml")
                && m["subPath"].as_str() == Some("sse.yml"))
    );
}

#[test]
fn the_service_selects_the_deployments_pods() {
    let d = yaml("k8s/deployment.yml");
    let s = yaml("k8s/service.yml");
    assert_eq!(s["kind"].as_str(), Some("Service"));
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    for (k, v) in s["spec"]["selector"].as_hash().unwrap() {
        assert_eq!(&labels[k.as_str().unwrap()], v, "selector {k:?}");
    }
    assert_eq!(d["spec"]["selector"]["matchLabels"], s["spec"]["selector"]);
    let target = s["spec"]["ports"][0]["targetPort"].as_str().unwrap();
    assert_eq!(container(&d)["ports"][0]["name"].as_str(), Some(target));
}

/// The ConfigMap's file is the runbook's, and a hub accepts it and applies it.
#[tokio::test]
async fn the_configmaps_file_is_the_runbooks_and_the_hub_takes_it() {
    let cm = yaml("k8s/configmap-sse.yml");
    assert_eq!(cm["kind"].as_str(), Some("ConfigMap"));
    let file = cm["data"]["sse.yml"].as_str().unwrap();
    assert_eq!(
        file,
        "keepalive_interval: 15\nclient_timeout: 60\nmax_connections_per_session: 1\nreconnect_backoff_max: 30\n"
    );
    assert_eq!(
        file,
        read("sse.yml"),
        "deploy/sse.yml (the image's copy) is the same file"
    );
    let dir = std::env::temp_dir().join(format!("tether-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sse.yml");
    std::fs::write(&path, file).unwrap();
    let hub = Hub::spawn(EXE, &["--config".to_owned(), path.display().to_string()])
        .await
        .unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let health = send(
        &target,
        "GET",
        "/health/sse",
        &[],
        b"",
        Duration::from_secs(30),
    )
    .await
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(health["settings"]["keepalive_ms"], 15_000);
    assert_eq!(health["settings"]["client_timeout_ms"], 60_000);
    assert_eq!(health["settings"]["reconnect_backoff_max_ms"], 30_000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dockerfile_is_multi_stage_unprivileged_and_checks_liveness() {
    let text = read("Dockerfile");
    let stages = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage: {stages} FROM lines");
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
    let health = text
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .take(2)
        .collect::<String>();
    assert!(health.contains("\"tether\", \"health\""), "{health}");
    assert!(health.contains("/health/live"), "{health}");
    assert!(text.contains("ENTRYPOINT [\"tether\"]"));
    assert!(text.contains("STOPSIGNAL SIGTERM"));
}

#[test]
fn the_systemd_unit_reloads_with_sighup_and_waits_for_the_drain() {
    let text = read("systemd/tether.service");
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing"))
    };
    let exec = value("ExecStart");
    assert!(exec.contains(" serve ") && exec.contains("--config /etc/tether/sse.yml"));
    assert!(exec.contains("--log-file /var/log/tether/sse.log"));
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value("KillSignal"), "SIGTERM");
    let drain: u64 = value("Environment")
        .strip_prefix("TETHER_DRAIN_SECS=")
        .unwrap()
        .parse()
        .unwrap();
    let stop: u64 = value("TimeoutStopSec").parse().unwrap();
    assert!(
        stop > drain,
        "TimeoutStopSec {stop} must cover the drain window {drain}"
    );
    assert_ne!(value("User"), "root");
}

/// The unit's and the Deployment's flags are real flags of `tether serve`.
#[test]
fn the_kits_flags_parse() {
    let d = yaml("k8s/deployment.yml");
    let mut args: Vec<String> = container(&d)["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    args.push("--help".into());
    let out = std::process::Command::new(EXE)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
