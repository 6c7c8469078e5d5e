//! Random sequences of additions, each committed separately; `e2fsck -fn` must stay clean
//! after every one, and debugfs must read back the last file written.

use std::path::Path;
use std::process::Command;

use graft::disk::RawFile;
use graft::fs::ext4::{Ext4Error, Ext4Writer, Meta};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Mkdir(u8, u8),
    File(u8, u8, u32),
    Symlink(u8, u8, u16),
    ManyFiles(u8, u16),
}

fn dir_name(d: u8) -> String {
    // A few shared names so operations land in the same directories.
    match d % 4 {
        0 => "".into(),
        1 => "/a".into(),
        2 => "/a/b".into(),
        _ => "/c".into(),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), any::<u8>()).prop_map(|(d, n)| Op::Mkdir(d, n)),
        (any::<u8>(), any::<u8>(), 0u32..300_000).prop_map(|(d, n, s)| Op::File(d, n, s)),
        (any::<u8>(), any::<u8>(), 1u16..300).prop_map(|(d, n, l)| Op::Symlink(d, n, l)),
        (any::<u8>(), 1u16..400).prop_map(|(d, k)| Op::ManyFiles(d, k)),
    ]
}

fn e2fsck_clean(img: &Path) -> Result<(), String> {
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && !text.contains("Fix?") {
        Ok(())
    } else {
        Err(text)
    }
}

fn apply(w: &mut Ext4Writer, op: &Op, step: usize) -> Result<Option<(String, Vec<u8>)>, Ext4Error> {
    let m = Meta::new(0o640, 1, 2, 1_000_000 + step as i64);
    match op {
        Op::Mkdir(d, n) => {
            w.mkdir_p(&format!("{}/dir{}", dir_name(*d), n % 8), &m)?;
            Ok(None)
        }
        Op::File(d, n, size) => {
            w.mkdir_p(&dir_name(*d), &m)?;
            let path = format!("{}/f{step}-{n}", dir_name(*d));
            let data: Vec<u8> = (0..*size)
                .map(|i| (i.wrapping_mul(31) ^ step as u32) as u8)
                .collect();
            w.create_file(&path, &m, *size as u64, &mut &data[..], false)?;
            Ok(Some((path, data)))
        }
        Op::Symlink(d, n, len) => {
            w.mkdir_p(&dir_name(*d), &m)?;
            let target = "t".repeat(*len as usize);
            w.symlink(
                &format!("{}/l{step}-{n}", dir_name(*d)),
                target.as_bytes(),
                &m,
                false,
            )?;
            Ok(None)
        }
        Op::ManyFiles(d, k) => {
            let dir = format!("{}/many", dir_name(*d));
            w.mkdir_p(&dir, &m)?;
            for i in 0..*k {
                let name = format!("{dir}/s{step}-{i}-{}", "q".repeat((i % 40) as usize));
                w.create_file(&name, &m, 0, &mut &b""[..], false)?;
            }
            Ok(None)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 20, ..ProptestConfig::default() })]

    #[test]
    fn random_additions_stay_clean(ops in proptest::collection::vec(op(), 1..8), blocks_1k in any::<bool>(), csum in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        std::fs::File::create(&img).unwrap().set_len(48 << 20).unwrap();
        let mut cmd = Command::new("mke2fs");
        cmd.args(["-q", "-F", "-t", "ext4", "-b", if blocks_1k { "1024" } else { "4096" }]);
        if !csum {
            cmd.args(["-O", "^metadata_csum"]);
        }
        assert!(cmd.arg(&img).status().unwrap().success());
        for (step, op) in ops.iter().enumerate() {
            let mut dev = RawFile::open(&img, true).unwrap();
            let mut w = Ext4Writer::open(&mut dev).unwrap();
            let res = apply(&mut w, op, step);
            match res {
                Ok(last) => {
                    w.commit().unwrap();
                    if let Err(text) = e2fsck_clean(&img) {
                        return Err(TestCaseError::fail(format!("after {op:?}: {text}")));
                    }
                    if let Some((path, data)) = last {
                        let out = tmp.path().join("dump");
                        let st = Command::new("debugfs").args(["-R", &format!("dump {path} {}", out.display())]).arg(&img).output().unwrap();
                        prop_assert!(st.status.success());
                        prop_assert_eq!(std::fs::read(&out).unwrap(), data);
                    }
                }
                // Name clashes from the random names are expected; the fs stays untouched.
                Err(Ext4Error::Exists(_)) | Err(Ext4Error::NotADirectory(_)) => drop(w),
                Err(e) => return Err(TestCaseError::fail(format!("{op:?}: {e}"))),
            }
        }
    }
}
