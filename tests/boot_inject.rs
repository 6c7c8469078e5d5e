//! The proof: the committed lockfile's `debian-12` payload, injected by graft into a real
//! Debian 12 cloud image (made by mmdebstrap, see tests/fixtures/debian-image.sh), starts
//! on its own under QEMU and runs a Heat software deployment of group `script` delivered
//! the way Heat delivers it to the `heat_local` collector. The negative control (the same
//! seed on the base image does nothing) is `base_image_without_an_agent_does_not_run_a_heat_deployment`
//! in tests/boot_debian.rs.
//!
//! Needs the package index (the lockfile's wheels are fetched) and about a minute of
//! QEMU (KVM when it works, TCG otherwise).

mod boot_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use boot_support::*;

const BOOT_TIMEOUT: Duration = Duration::from_secs(600);

fn graft(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_graft"));
    c.current_dir(repo_root()).arg("--cache-dir").arg(cache);
    c
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "graft failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn graft_cat(cache: &Path, image: &Path, path: &str) -> Option<Vec<u8>> {
    let out = graft(cache)
        .arg("cat")
        .arg(image)
        .arg(path)
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

#[test]
#[ignore = "needs the package index"]
fn injected_agent_runs_a_heat_deployment_on_first_boot() {
    let img = debian_image();
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let lock = repo_root().join("lockfiles/heat-agent.lock");

    // Into the compressed qcow2 and the dynamic VHD (target picked from each image), and
    // the qcow2 converted to a fixed VHD as Azure wants it.
    let out_qcow2 = work.path().join("agent.qcow2");
    let out_vhd = work.path().join("agent.vhd");
    let out_fixed = work.path().join("azure.vhd");
    for (input, output, extra) in [
        (&img.qcow2, &out_qcow2, &[][..]),
        (&img.vhd_dynamic, &out_vhd, &[][..]),
        (
            &img.qcow2,
            &out_fixed,
            &["--format", "vhd", "--vhd-type", "fixed"][..],
        ),
    ] {
        let out = ok(graft(&cache)
            .arg("--json")
            .arg("inject")
            .arg(input)
            .arg("-o")
            .arg(output)
            .arg("--lock")
            .arg(&lock)
            .args(extra)
            .output()
            .unwrap());
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["target"], "debian-12", "{report}");
        assert!(
            report["report"]["files"].as_u64().unwrap() > 1000,
            "{report}"
        );
        // The guest, read by graft, agrees with the manifest inside it.
        let v = graft(&cache).arg("verify").arg(output).output().unwrap();
        assert_eq!(
            v.status.code(),
            Some(0),
            "verify {}:\n{}",
            output.display(),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    run_ok(
        Command::new("qemu-img")
            .args(["check", "-q"])
            .arg(&out_qcow2),
    );
    // The three outputs hold the same disk.
    run_ok(
        Command::new("qemu-img")
            .args(["compare", "-f", "qcow2", "-F", "vpc"])
            .arg(&out_qcow2)
            .arg(&out_vhd),
    );
    run_ok(
        Command::new("qemu-img")
            .args(["compare", "-f", "qcow2", "-F", "vpc"])
            .arg(&out_qcow2)
            .arg(&out_fixed),
    );
    let (clean, report) = GuestFs::open(&out_fixed).fsck();
    assert!(clean, "e2fsck -fn after inject:\n{report}");

    let id = "5d1b4c1e-0b7e-4c51-9d43-graft0000002";
    let (user_data, meta) = heat_deployment_seed(
        id,
        "#!/bin/sh\necho deployed-by-heat > /root/deployed\necho script-stdout\n",
    );
    let seed = nocloud_seed(work.path(), &user_data, &meta);
    let result = boot(&out_qcow2, &seed, BOOT_TIMEOUT);
    result.assert_powered_off();
    let context = || {
        format!(
            "accel {}, {} s\n--- serial log\n{}",
            result.accel, result.seconds, result.serial_log
        )
    };

    let waited = graft_cat(&cache, &result.disk, HEAT_WAIT_RESULT_PATH).expect("the waiter ran");
    let waited = String::from_utf8_lossy(&waited).into_owned();
    assert!(
        waited.starts_with("notify-present"),
        "{waited}\n{}",
        context()
    );
    let deployed = graft_cat(&cache, &result.disk, "/root/deployed")
        .unwrap_or_else(|| panic!("no /root/deployed\n{}", context()));
    assert_eq!(deployed, b"deployed-by-heat\n");
    let notify = graft_cat(
        &cache,
        &result.disk,
        &format!("{HEAT_DEPLOYED_DIR}/{id}.notify.json"),
    )
    .expect("notify.json");
    let notify: serde_json::Value = serde_json::from_slice(&notify).unwrap();
    assert_eq!(notify["deploy_status_code"], 0, "{notify}");
    assert_eq!(
        notify["deploy_stdout"].as_str().map(str::trim),
        Some("script-stdout"),
        "{notify}"
    );
    let (clean, report) = GuestFs::open(&result.disk).fsck();
    assert!(clean, "the guest left its root unclean:\n{report}");
}
