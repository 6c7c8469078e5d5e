//! `graft inspect --json`, `graft ls` and `graft cat` on images made by sfdisk, mkfs and
//! qemu-img: GPT, MBR with logical partitions, and no table; as qcow2, VHD and raw.

mod disk_support;

use std::path::Path;

use disk_support::*;

fn check_guest_facts(j: &serde_json::Value, img: &Path) {
    let ctx = img.display();
    assert_eq!(j["schema"], 1);
    assert_eq!(j["os"]["id"], "debian", "{ctx}");
    assert_eq!(j["os"]["version_id"], "12", "{ctx}");
    assert_eq!(
        j["os"]["pretty_name"], "Debian GNU/Linux 12 (bookworm)",
        "{ctx}"
    );
    assert_eq!(j["python"]["default"], "3.11", "{ctx}");
    assert_eq!(j["python"]["default_path"], "/usr/bin/python3.11", "{ctx}");
    assert_eq!(
        j["python"]["versions"],
        serde_json::json!(["3.11"]),
        "{ctx}"
    );
    assert_eq!(j["glibc"], "2.36", "{ctx}");
    // The host's /bin/sh, copied in: its ELF machine is the host's.
    assert_eq!(j["architecture"], std::env::consts::ARCH, "{ctx}");
    assert_eq!(j["architecture_from"], "/usr/bin/dash", "{ctx}");
    assert_eq!(j["init"], "systemd", "{ctx}");
    assert_eq!(j["cloud_init"]["version"], "22.4.2", "{ctx}");
    assert_eq!(j["selinux"], "disabled", "{ctx}");
    assert_eq!(j["problems"], serde_json::json!([]), "{ctx}");
}

#[test]
fn gpt_image_in_every_container() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d, Table::Gpt);
    let images = [
        (raw.clone(), "raw"),
        (d.join("g.qcow2"), "qcow2"),
        (d.join("g-fixed.vhd"), "vhd-fixed"),
        (d.join("g-dyn.vhd"), "vhd-dynamic"),
    ];
    convert(&raw, &images[1].0, "qcow2", &["-c"]);
    convert(
        &raw,
        &images[2].0,
        "vpc",
        &["-o", "subformat=fixed,force_size=on"],
    );
    convert(
        &raw,
        &images[3].0,
        "vpc",
        &["-o", "subformat=dynamic,force_size=on"],
    );
    for (img, format) in &images {
        let j = inspect_json(img);
        assert_eq!(j["image"]["format"], *format);
        assert_eq!(j["image"]["virtual_size"], DISK_MB << 20, "{format}");
        assert_eq!(j["partition_table"]["kind"], "gpt");
        let parts = j["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0]["type_name"], "EFI System");
        assert_eq!(parts[0]["filesystem"], "vfat");
        assert_eq!(parts[0]["name"], "esp");
        assert_eq!(parts[1]["filesystem"], "ext4");
        assert_eq!(parts[1]["fs_label"], "groot");
        assert_eq!(parts[1]["start"], ROOT_START);
        assert_eq!(j["root"]["partition"], 2);
        assert!(
            j["root"]["reason"]
                .as_str()
                .unwrap()
                .contains("Linux root (x86-64)"),
            "{}",
            j["root"]
        );
        check_guest_facts(&j, img);
        // cat prints the bytes exactly (through the /etc/os-release -> ../usr/lib symlink).
        let out = graft(&["cat", p(img), "/etc/os-release"]);
        assert!(out.status.success());
        assert_eq!(
            out.stdout,
            std::fs::read(d.join("tree/usr/lib/os-release")).unwrap()
        );
    }
}

#[test]
fn mbr_with_logical_partitions_and_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d, Table::Mbr);
    let q = d.join("m.qcow2");
    convert(&raw, &q, "qcow2", &[]);
    let j = inspect_json(&q);
    assert_eq!(j["partition_table"]["kind"], "mbr");
    let parts = j["partitions"].as_array().unwrap();
    let idx: Vec<u64> = parts.iter().map(|p| p["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, [1, 2, 5, 6], "{parts:?}");
    assert_eq!(parts[1]["type_name"], "Extended");
    assert_eq!(parts[2]["logical"], true);
    assert_eq!(parts[2]["filesystem"], "ext4");
    assert_eq!(parts[2]["start"], ROOT_START);
    assert_eq!(parts[3]["filesystem"], "swap");
    assert_eq!(parts[3]["fs_label"], "sw");
    assert_eq!(parts[0]["filesystem"], serde_json::Value::Null);
    assert_eq!(j["root"]["partition"], 5);
    check_guest_facts(&j, &q);
    // sfdisk agrees on where the logical partitions are.
    let sf = run("sfdisk", &["--json", p(&raw)]);
    let sf: serde_json::Value = serde_json::from_slice(&sf.stdout).unwrap();
    let sf_starts: Vec<u64> = sf["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["start"].as_u64().unwrap() * 512)
        .collect();
    let ours: Vec<u64> = parts.iter().map(|p| p["start"].as_u64().unwrap()).collect();
    assert_eq!(sf_starts, ours);

    // No table: the filesystem is the whole disk.
    let dir2 = tempfile::tempdir().unwrap();
    let whole = raw_disk(dir2.path(), Table::None);
    let v = dir2.path().join("w.vhd");
    convert(&whole, &v, "vpc", &["-o", "subformat=dynamic"]);
    for img in [&whole, &v] {
        let j = inspect_json(img);
        assert_eq!(j["partition_table"]["kind"], "none");
        assert_eq!(j["partitions"][0]["index"], 0);
        assert_eq!(j["partitions"][0]["filesystem"], "ext4");
        assert!(j["root"]["reason"].as_str().unwrap().contains("whole disk"));
        check_guest_facts(&j, img);
    }
}

#[test]
fn ls_and_cat_stay_inside_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d, Table::Gpt);
    let img = d.join("x.qcow2");
    convert(&raw, &img, "qcow2", &[]);
    let ls = graft(&["ls", p(&img), "/usr/bin"]);
    assert!(ls.status.success());
    assert_eq!(
        String::from_utf8(ls.stdout).unwrap(),
        "dash\npython3\npython3.11\nsh\n"
    );
    // /bin is a symlink to usr/bin: followed inside the guest.
    let ls = graft(&["ls", "-l", p(&img), "/bin"]);
    let text = String::from_utf8(ls.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with("python3 -> python3.11")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(" dash")),
        "{text}"
    );
    // A link climbing above / stays at / (here: /etc/hostname of the guest, not the host's).
    let out = graft(&["cat", p(&img), "/etc/escape"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"guest-host\n");
    // Loops are an error that says so.
    let out = graft(&["cat", p(&img), "/etc/loop-a"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("too many levels of symbolic links"));
    let out = graft(&["cat", p(&img), "/etc/nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/etc/nope: no such file"));
    // --json listing.
    let out = graft(&["ls", "--json", p(&img), "/etc"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let esc = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "escape")
        .unwrap();
    assert_eq!(esc["kind"], "symlink");
    assert_eq!(esc["link_target"], "../../../../etc/hostname");
    // The size graft lists is the size of the file that went in.
    let ls = graft(&["ls", "-l", p(&img), "/usr/bin/dash"]);
    let text = String::from_utf8(ls.stdout).unwrap();
    let size: u64 = text.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(
        size,
        std::fs::metadata(d.join("tree/usr/bin/dash"))
            .unwrap()
            .len()
    );
}

#[test]
fn ext2_and_ext3_are_named_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = guest_tree(d);
    for kind in ["ext2", "ext3"] {
        let img = d.join(format!("{kind}.img"));
        std::fs::File::create(&img)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        run(
            "mkfs.ext4",
            &["-q", "-F", "-t", kind, "-d", p(&tree), p(&img)],
        );
        // blkid, an independent reader, agrees on the type.
        let blkid = run("blkid", &["-o", "value", "-s", "TYPE", p(&img)]);
        assert_eq!(String::from_utf8_lossy(&blkid.stdout).trim(), kind);
        let j = inspect_json(&img);
        assert_eq!(j["partitions"][0]["filesystem"], kind);
        assert_eq!(j["root"]["filesystem"], kind);
        assert_eq!(j["os"]["id"], "debian");
        assert_eq!(j["init"], "systemd");
    }
}
