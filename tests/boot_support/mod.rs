//! Shared helpers for the tests that need a real Debian 12 cloud image, boot it under QEMU
//! and read back what the guest did.
//!
//! Use from another integration test with
//! `#[path = "boot_support/mod.rs"] mod boot_support;`.
//!
//! Everything here checks graft against tools nobody here wrote: the image is made by
//! mmdebstrap, mke2fs, sfdisk and qemu-img (`tests/fixtures/debian-image.sh`), the guest
//! runs under qemu-system-x86_64 (`tests/fixtures/boot.sh`), and files are read back out of
//! the disk with e2fsprogs' `debugfs` (never with graft).
#![allow(dead_code)] // each test crate that includes this module uses a different part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tempfile::TempDir;

/// Where the heat_local collector of os-collect-config reads Heat's metadata
/// (`os_collect_config/heat_local.py`, `HEAT_METADATA_PATH`).
pub const HEAT_LOCAL_METADATA_PATH: &str = "/var/lib/heat-cfntools/cfn-init-data";
/// Where heat-agents' `55-heat-config` records each deployment (`DEPLOYED_DIR`):
/// `<id>.json` (the deployment, written before the hook runs) and `<id>.notify.json`
/// (the hook's result, with `deploy_status_code`).
pub const HEAT_DEPLOYED_DIR: &str = "/var/lib/heat-config/deployed";
/// Written by the seed's waiter once it stops waiting for the notify file: `notify-present`
/// or `notify-absent`. Its presence proves cloud-init ran the seed.
pub const HEAT_WAIT_RESULT_PATH: &str = "/var/lib/graft-heat-wait-result";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures_dir() -> PathBuf {
    repo_root().join("tests/fixtures")
}

/// Runs a command and returns its output, panicking with everything it printed if it
/// cannot start or exits non-zero.
pub fn run_ok(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    if !out.status.success() {
        panic!(
            "{shown} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// The cached Debian 12 fixture built by `tests/fixtures/debian-image.sh`.
#[derive(Debug, Clone)]
pub struct DebianImage {
    pub dir: PathBuf,
    pub raw: PathBuf,
    pub qcow2: PathBuf,
    pub vhd_fixed: PathBuf,
    pub vhd_dynamic: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// `image.env` as (name, value) pairs: fixed GUIDs, the fs UUID, the partition's place.
    pub env: Vec<(String, String)>,
}

impl DebianImage {
    pub fn env_value(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{} has no {name}", self.dir.join("image.env").display()))
    }
}

/// Builds the Debian 12 image once (about a minute, ~100 MiB from Debian's mirror) into
/// `target/fixtures/debian-12/` and reuses it afterwards; the script's lock makes parallel
/// tests wait for one build. The files are shared: never write to them (boot through
/// [`boot`], which uses an overlay, or copy them first).
pub fn debian_image() -> DebianImage {
    let dir = repo_root().join("target/fixtures/debian-12");
    let out = run_ok(Command::new(fixtures_dir().join("debian-image.sh")).arg(&dir));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let env_text = std::fs::read_to_string(dir.join("image.env")).expect("read image.env");
    let env = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    DebianImage {
        raw: dir.join("debian-12.raw"),
        qcow2: dir.join("debian-12.qcow2"),
        vhd_fixed: dir.join("debian-12.vhd"),
        vhd_dynamic: dir.join("debian-12-dynamic.vhd"),
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        env,
        dir,
    }
}

/// QEMU's format name for an image. A fixed VHD has only a footer, which QEMU's probe
/// does not look at (it calls such a file raw), so the extension decides for `.vhd`.
pub fn qemu_format(image: &Path) -> String {
    if image
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("vhd") || e.eq_ignore_ascii_case("vpc"))
    {
        return "vpc".to_string();
    }
    let out = run_ok(
        Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(image),
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("qemu-img info JSON");
    info["format"]
        .as_str()
        .unwrap_or_else(|| panic!("qemu-img info names no format for {}", image.display()))
        .to_string()
}

/// A NoCloud seed disk (vfat labelled `cidata`) made by `tests/fixtures/nocloud-seed.sh`.
pub fn nocloud_seed(dir: &Path, user_data: &str, meta_data: &str) -> PathBuf {
    let ud = dir.join("user-data");
    let md = dir.join("meta-data");
    std::fs::write(&ud, user_data).expect("write user-data");
    std::fs::write(&md, meta_data).expect("write meta-data");
    let seed = dir.join("seed.img");
    run_ok(
        Command::new(fixtures_dir().join("nocloud-seed.sh"))
            .arg(&seed)
            .arg(&ud)
            .arg(&md),
    );
    seed
}

/// NoCloud meta-data; a fresh instance id per seed makes cloud-init treat every boot of a
/// new overlay as a first boot.
pub fn meta_data(instance_id: &str) -> String {
    format!("instance-id: {instance_id}\nlocal-hostname: graft-test\n")
}

/// A seed whose `runcmd` writes `ok` to `marker_path` and powers the guest off.
pub fn marker_seed(marker_path: &str) -> (String, String) {
    let config = serde_json::json!({
        "runcmd": [
            ["sh", "-c", format!("echo ok > {marker_path}")],
            ["poweroff"],
        ],
    });
    (cloud_config(&config), meta_data("graft-marker"))
}

/// Seconds the seed of [`heat_deployment_seed`] waits for the deployment's notify file.
pub const HEAT_WAIT_SECONDS: u32 = 60;

/// A seed delivering one Heat software deployment of group `script`, the way Heat does it
/// for the `heat_local` collector: the deployment JSON at [`HEAT_LOCAL_METADATA_PATH`].
///
/// A transient systemd service (started by `runcmd`, so not inside cloud-final.service,
/// which an agent unit may be ordered after) waits up to [`HEAT_WAIT_SECONDS`] for
/// `HEAT_DEPLOYED_DIR/<id>.notify.json`, records `notify-present` or `notify-absent` at
/// [`HEAT_WAIT_RESULT_PATH`], and powers the guest off.
///
/// Returns (user-data, meta-data).
pub fn heat_deployment_seed(id: &str, script: &str) -> (String, String) {
    assert!(
        id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "deployment id {id:?}: use letters, digits and '-'"
    );
    let deployment = serde_json::json!({
        "deployments": [{
            "id": id,
            "name": format!("graft-test-{id}"),
            "group": "script",
            "inputs": [
                {"name": "deploy_server_id", "value": "graft-test-server", "type": "String"},
                {"name": "deploy_action", "value": "CREATE", "type": "String"},
                {"name": "deploy_stack_id", "value": "graft-test/0", "type": "String"},
                {"name": "deploy_resource_name", "value": "deployment", "type": "String"},
                // No signal URL, queue or auth: heat-config-notify then sends nothing,
                // which is what a guest without network needs.
                {"name": "deploy_signal_transport", "value": "NO_SIGNAL", "type": "String"},
            ],
            "outputs": [],
            "options": {},
            "config": script,
        }],
    });
    let notify = format!("{HEAT_DEPLOYED_DIR}/{id}.notify.json");
    let waiter = format!(
        "#!/bin/sh\n\
         i=0\n\
         while [ $i -lt {HEAT_WAIT_SECONDS} ] && [ ! -e {notify} ]; do sleep 1; i=$((i + 1)); done\n\
         if [ -e {notify} ]; then r=notify-present; else r=notify-absent; fi\n\
         echo \"$r after $i s\" > {HEAT_WAIT_RESULT_PATH}\n\
         sync\n\
         systemctl poweroff\n"
    );
    let config = serde_json::json!({
        "write_files": [
            {
                "path": HEAT_LOCAL_METADATA_PATH,
                "permissions": "0600",
                "content": serde_json::to_string(&deployment).expect("deployment JSON"),
            },
            {
                "path": "/usr/local/sbin/graft-wait-for-deployment",
                "permissions": "0755",
                "content": waiter,
            },
        ],
        "runcmd": [
            ["systemd-run", "--no-block", "--unit=graft-wait-for-deployment",
             "/usr/local/sbin/graft-wait-for-deployment"],
        ],
    });
    (
        cloud_config(&config),
        meta_data(&format!("graft-heat-{id}")),
    )
}

/// A `#cloud-config` document. YAML is a superset of JSON, so JSON needs no YAML quoting.
fn cloud_config(config: &serde_json::Value) -> String {
    format!(
        "#cloud-config\n{}\n",
        serde_json::to_string_pretty(config).expect("cloud-config JSON")
    )
}

/// What one boot did.
#[derive(Debug)]
pub struct BootResult {
    /// Whether the guest powered itself off within the time limit.
    pub powered_off: bool,
    /// `kvm` or `tcg` (empty when the boot failed).
    pub accel: String,
    /// Seconds from QEMU's start to power-off, as boot.sh measured them.
    pub seconds: u64,
    pub serial_log: String,
    /// boot.sh's own messages (KVM fallback, failure reasons).
    pub boot_messages: String,
    /// The disk the guest wrote to: a qcow2 overlay whose backing file is the booted image.
    pub disk: PathBuf,
    _dir: TempDir,
}

impl BootResult {
    pub fn assert_powered_off(&self) {
        assert!(
            self.powered_off,
            "the guest did not power off.\n--- boot.sh\n{}\n--- serial log (tail)\n{}",
            self.boot_messages,
            tail(&self.serial_log, 80)
        );
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

static KVM_FAILED: AtomicBool = AtomicBool::new(false);

/// Boots `image` with the Debian fixture's kernel and initramfs (see [`boot_with_kernel`]).
pub fn boot(image: &Path, seed: &Path, timeout: Duration) -> BootResult {
    let fixture = debian_image();
    boot_with_kernel(image, &fixture.kernel, &fixture.initrd, seed, timeout, "")
}

/// Boots `image` under QEMU until the guest powers off or `timeout` passes. The guest
/// writes to a fresh qcow2 overlay ([`BootResult::disk`]), never to `image`.
/// `extra_append` is added to the kernel command line.
pub fn boot_with_kernel(
    image: &Path,
    kernel: &Path,
    initrd: &Path,
    seed: &Path,
    timeout: Duration,
    extra_append: &str,
) -> BootResult {
    let dir = tempfile::Builder::new()
        .prefix("graft-boot-")
        .tempdir()
        .expect("tempdir");
    let image = std::fs::canonicalize(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let disk = dir.path().join("disk.qcow2");
    run_ok(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-b"])
            .arg(&image)
            .args(["-F", &qemu_format(&image)])
            .arg(&disk),
    );
    let serial = dir.path().join("serial.log");
    let mut cmd = Command::new(fixtures_dir().join("boot.sh"));
    // Once KVM has failed in this test process, later boots skip the attempt (it costs
    // boot.sh's stall timeout each time).
    if std::env::var_os("GRAFT_BOOT_ACCEL").is_none() && KVM_FAILED.load(Ordering::Relaxed) {
        cmd.env("GRAFT_BOOT_ACCEL", "tcg");
    }
    if !extra_append.is_empty() {
        cmd.env("GRAFT_BOOT_APPEND", extra_append);
    }
    let out = cmd
        .arg("--write")
        .arg(&disk)
        .arg(kernel)
        .arg(initrd)
        .arg(seed)
        .arg(&serial)
        .arg(timeout.as_secs().max(1).to_string())
        .output()
        .expect("run boot.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or("")
            .to_string()
    };
    let serial_log = std::fs::read(&serial)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if String::from_utf8_lossy(&out.stderr).contains("boot: KVM failed") {
        KVM_FAILED.store(true, Ordering::Relaxed);
    }
    let result = BootResult {
        powered_off: out.status.success(),
        accel: field("accel="),
        seconds: field("seconds=").parse().unwrap_or(0),
        serial_log,
        boot_messages: String::from_utf8_lossy(&out.stderr).into_owned(),
        disk,
        _dir: dir,
    };
    eprintln!(
        "boot: {} powered_off={} accel={} seconds={}\n{}",
        image.display(),
        result.powered_off,
        result.accel,
        result.seconds,
        result.boot_messages.trim_end()
    );
    result
}

/// The root filesystem of a disk image, copied out to a plain file so that e2fsprogs can
/// read it. The root is the GPT partition typed "Linux root (x86-64)" or, failing that, the
/// first "Linux filesystem" partition, as `sfdisk --json` reports them.
pub struct GuestFs {
    pub partition: PathBuf,
    _dir: TempDir,
}

const GPT_TYPE_ROOT_X86_64: &str = "4F68BCE3-E8CD-4C31-B1D5-0A1B0A6E3B27";
const GPT_TYPE_LINUX_FS: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

impl GuestFs {
    pub fn open(image: &Path) -> GuestFs {
        let dir = tempfile::Builder::new()
            .prefix("graft-guestfs-")
            .tempdir()
            .expect("tempdir");
        let raw = dir.path().join("disk.raw");
        // qemu-img follows backing chains and writes zeros as holes.
        run_ok(
            Command::new("qemu-img")
                .args(["convert", "-f", &qemu_format(image), "-O", "raw"])
                .arg(image)
                .arg(&raw),
        );
        let table = run_ok(Command::new("sfdisk").arg("--json").arg(&raw));
        let table: serde_json::Value =
            serde_json::from_slice(&table.stdout).expect("sfdisk --json output");
        let parts = table["partitiontable"]["partitions"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no partitions in {table}", image.display()));
        let has_type = |t: &str| {
            parts.iter().find(|p| {
                p["type"]
                    .as_str()
                    .is_some_and(|pt| pt.eq_ignore_ascii_case(t))
            })
        };
        let root = has_type(GPT_TYPE_ROOT_X86_64)
            .or_else(|| has_type(GPT_TYPE_LINUX_FS))
            .unwrap_or_else(|| panic!("{}: no Linux root partition in {table}", image.display()));
        let sector = table["partitiontable"]["sectorsize"]
            .as_u64()
            .unwrap_or(512);
        let start = root["start"].as_u64().expect("partition start") * sector;
        let size = root["size"].as_u64().expect("partition size") * sector;
        let partition = dir.path().join("root.ext4");
        copy_range_sparse(&raw, start, size, &partition);
        std::fs::remove_file(&raw).expect("remove temporary raw disk");
        GuestFs {
            partition,
            _dir: dir,
        }
    }

    /// The file's bytes as debugfs reads them, or None when the path does not exist.
    /// Symbolic links are followed inside the guest's root (debugfs itself follows the
    /// links in the leading components, not a link at the end), as the guest would.
    pub fn read(&self, guest_path: &str) -> Option<Vec<u8>> {
        let mut path = guest_path.to_string();
        for _ in 0..40 {
            assert!(
                path.starts_with('/')
                    && !path
                        .chars()
                        .any(|c| c.is_whitespace() || c == '"' || c == '\\'),
                "guest path {path:?} (from {guest_path:?}): absolute, without spaces or quotes"
            );
            let stat = self.debugfs(&format!("stat {path}"));
            let stat_err = String::from_utf8_lossy(&stat.stderr);
            if stat_err.contains("File not found") {
                return None;
            }
            let stat_out = String::from_utf8_lossy(&stat.stdout);
            if stat_out.contains("Type: regular") {
                return Some(self.debugfs(&format!("cat {path}")).stdout);
            }
            assert!(
                stat_out.contains("Type: symlink"),
                "{path} in the guest is neither a regular file nor a symlink:\n{stat_out}{stat_err}"
            );
            // Short targets live in the inode ("Fast link dest"); longer ones in a block
            // that `cat` prints.
            let target = match stat_out
                .lines()
                .find_map(|l| l.trim().strip_prefix("Fast link dest: \""))
            {
                Some(rest) => rest.trim_end_matches('"').to_string(),
                None => String::from_utf8_lossy(&self.debugfs(&format!("cat {path}")).stdout)
                    .into_owned(),
            };
            path = resolve_link(&path, &target);
        }
        panic!("{guest_path}: more than 40 symbolic links in the guest")
    }

    /// `e2fsck -fn`: whether the filesystem is clean, and what e2fsck said.
    pub fn fsck(&self) -> (bool, String) {
        let out = Command::new("e2fsck")
            .arg("-fn")
            .arg(&self.partition)
            .output()
            .expect("run e2fsck");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn debugfs(&self, request: &str) -> Output {
        run_ok(
            Command::new("debugfs")
                .arg("-R")
                .arg(request)
                .arg(&self.partition),
        )
    }
}

/// The guest path a symlink at `link` with `target` points to, kept inside the guest root
/// (`..` at the root stays at the root, as in the kernel's resolution under a chroot).
fn resolve_link(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if !target.starts_with('/') {
        parts.extend(link.split('/').filter(|p| !p.is_empty()));
        parts.pop();
    }
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// One file read out of an image's root filesystem with debugfs (see [`GuestFs`]).
pub fn read_guest_file(image: &Path, guest_path: &str) -> Option<Vec<u8>> {
    GuestFs::open(image).read(guest_path)
}

/// Copies `len` bytes at `offset` of `src` into a new file, leaving all-zero blocks as holes.
fn copy_range_sparse(src: &Path, offset: u64, len: u64, dst: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut input = std::fs::File::open(src).expect("open raw disk");
    let mut output = std::fs::File::create(dst).expect("create partition file");
    input.seek(SeekFrom::Start(offset)).expect("seek raw disk");
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from((len - done).min(buf.len() as u64)).expect("chunk size");
        input
            .read_exact(&mut buf[..want])
            .unwrap_or_else(|e| panic!("{}: short read at {}: {e}", src.display(), offset + done));
        if buf[..want].iter().all(|&b| b == 0) {
            output
                .seek(SeekFrom::Current(want as i64))
                .expect("seek partition file");
        } else {
            output
                .write_all(&buf[..want])
                .expect("write partition file");
        }
        done += want as u64;
    }
    output.set_len(len).expect("size partition file");
}
