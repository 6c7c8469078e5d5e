//! The Debian 12 cloud image fixture, proven on its own before graft touches it: it is the
//! disk that graft's inspect/inject tests and the boot proof stand on.
//!
//! Slow: the first run builds the image with mmdebstrap (about a minute, ~100 MiB from
//! Debian's mirror, cached in target/fixtures/debian-12/), and two tests boot it under QEMU
//! (KVM when it works, TCG otherwise: about a minute each under TCG).

mod boot_support;

use std::process::Command;
use std::time::Duration;

use boot_support::*;

const BOOT_TIMEOUT: Duration = Duration::from_secs(600);

/// The four containers hold the same disk, laid out as debian-image.sh promises, checked with
/// qemu-img, sfdisk and e2fsck.
#[test]
fn fixture_formats_hold_one_gpt_disk_with_a_clean_ext4_root() {
    let img = debian_image();
    for (path, format) in [
        (&img.qcow2, "qcow2"),
        (&img.vhd_fixed, "vpc"),
        (&img.vhd_dynamic, "vpc"),
    ] {
        run_ok(
            Command::new("qemu-img")
                .args(["compare", "-f", "raw", "-F", format])
                .arg(&img.raw)
                .arg(path),
        );
    }
    let info = run_ok(
        Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&img.qcow2),
    );
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 2u64 << 30);

    let table = run_ok(Command::new("sfdisk").arg("--json").arg(&img.raw));
    let table: serde_json::Value = serde_json::from_slice(&table.stdout).unwrap();
    let table = &table["partitiontable"];
    assert_eq!(table["label"], "gpt");
    assert_eq!(
        table["id"].as_str().unwrap().to_ascii_lowercase(),
        img.env_value("DISK_GUID")
    );
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{table}");
    assert_eq!(parts[0]["type"], img.env_value("ROOT_PART_TYPE"));
    assert_eq!(
        parts[0]["start"].as_u64().unwrap().to_string(),
        img.env_value("ROOT_PART_START_SECTOR")
    );

    let fs = GuestFs::open(&img.vhd_dynamic);
    let (clean, report) = fs.fsck();
    assert!(clean, "e2fsck -fn on the fixture's root:\n{report}");
    let dump = run_ok(Command::new("dumpe2fs").arg("-h").arg(&fs.partition));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.lines().any(
            |l| l.starts_with("Filesystem UUID:") && l.ends_with(img.env_value("ROOT_FS_UUID"))
        ),
        "{dump}"
    );
    assert!(
        dump.contains("extent") && dump.contains("metadata_csum"),
        "{dump}"
    );

    let os_release =
        String::from_utf8(fs.read("/etc/os-release").expect("/etc/os-release")).unwrap();
    assert!(os_release.contains("VERSION_ID=\"12\""), "{os_release}");
    let fstab = String::from_utf8(fs.read("/etc/fstab").expect("/etc/fstab")).unwrap();
    assert!(
        fstab.starts_with(&format!("UUID={} / ext4", img.env_value("ROOT_FS_UUID"))),
        "{fstab}"
    );
    assert!(fs.read("/usr/bin/cloud-init").is_some());
    assert!(fs.read("/var/lib/graft-boot-marker").is_none());
}

/// The base image boots, cloud-init finds the NoCloud seed and runs its runcmd, and the
/// guest's write is on the disk afterwards, read back with debugfs.
#[test]
fn base_image_boots_and_runs_the_seed_runcmd() {
    let img = debian_image();
    let work = tempfile::tempdir().unwrap();
    let marker = "/var/lib/graft-boot-marker";
    let (user_data, meta) = marker_seed(marker);
    let seed = nocloud_seed(work.path(), &user_data, &meta);

    let result = boot(&img.qcow2, &seed, BOOT_TIMEOUT);
    result.assert_powered_off();

    let fs = GuestFs::open(&result.disk);
    assert_eq!(fs.read(marker).as_deref(), Some(&b"ok\n"[..]));
    // cloud-init's own record of where this instance's data came from.
    let datasource = fs
        .read("/var/lib/cloud/instance/datasource")
        .expect("cloud-init recorded its datasource");
    let datasource = String::from_utf8_lossy(&datasource);
    assert!(datasource.starts_with("DataSourceNoCloud"), "{datasource}");
    let (clean, report) = fs.fsck();
    assert!(clean, "the guest left its root unclean:\n{report}");
    // The guest wrote to an overlay: the cached fixture is as built.
    assert_eq!(read_guest_file(&img.qcow2, marker), None);
}

/// The negative control for the inject proof: a Heat deployment delivered the way the real
/// agent reads it does nothing on the base image, which has no agent. The waiter's record
/// shows that cloud-init did run the seed and waited the full time.
#[test]
fn base_image_without_an_agent_does_not_run_a_heat_deployment() {
    let img = debian_image();
    let work = tempfile::tempdir().unwrap();
    let id = "5d1b4c1e-0b7e-4c51-9d43-graft0000001";
    let (user_data, meta) = heat_deployment_seed(id, "#!/bin/sh\necho hello > /root/deployed\n");
    let seed = nocloud_seed(work.path(), &user_data, &meta);

    let result = boot(&img.qcow2, &seed, BOOT_TIMEOUT);
    result.assert_powered_off();

    let fs = GuestFs::open(&result.disk);
    let delivered = fs
        .read(HEAT_LOCAL_METADATA_PATH)
        .expect("cloud-init wrote the deployment for the heat_local collector");
    let delivered: serde_json::Value = serde_json::from_slice(&delivered).unwrap();
    assert_eq!(delivered["deployments"][0]["id"], id);
    assert_eq!(delivered["deployments"][0]["group"], "script");

    let waited =
        String::from_utf8(fs.read(HEAT_WAIT_RESULT_PATH).expect("the waiter ran")).unwrap();
    assert!(
        waited.starts_with(&format!("notify-absent after {HEAT_WAIT_SECONDS} s")),
        "{waited}"
    );
    assert_eq!(
        fs.read(&format!("{HEAT_DEPLOYED_DIR}/{id}.notify.json")),
        None
    );
    assert_eq!(fs.read(&format!("{HEAT_DEPLOYED_DIR}/{id}.json")), None);
    assert_eq!(fs.read("/root/deployed"), None);
}

/// The harness itself can fail: a disk with no root filesystem never powers off (the
/// initramfs gives up on the root device and, with panic= set, reboots), and boot() says so
/// with the guest's console output.
#[test]
fn boot_reports_a_guest_that_does_not_power_off() {
    let img = debian_image();
    let work = tempfile::tempdir().unwrap();
    let blank = work.path().join("blank.raw");
    std::fs::File::create(&blank)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let (user_data, meta) = marker_seed("/var/lib/graft-boot-marker");
    let seed = nocloud_seed(work.path(), &user_data, &meta);

    let result = boot_with_kernel(
        &blank,
        &img.kernel,
        &img.initrd,
        &seed,
        BOOT_TIMEOUT,
        "rootdelay=5",
    );
    assert!(!result.powered_off, "{}", result.serial_log);
    assert!(
        result.boot_messages.contains("without powering off"),
        "{}",
        result.boot_messages
    );
    assert!(
        result.serial_log.contains("Gave up waiting for root"),
        "{}",
        result.serial_log
    );
}
