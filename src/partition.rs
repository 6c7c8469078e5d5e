//! Partition tables (GPT, MBR with extended/logical partitions, or none) turned into
//! regions: where each partition starts, how long it is, its type and name.
//!
//! Specs: UEFI 2.10, chapter 5 "GUID Partition Table (GPT) Disk Layout"
//! (<https://uefi.org/specs/UEFI/2.10/05_GUID_Partition_Table_Format.html>) — read with
//! `gptman`; the MBR and the chain of extended boot records (EBRs) as described in
//! <https://en.wikipedia.org/wiki/Extended_boot_record> — the MBR read with `mbrman`, the
//! EBR chain walked here with checked arithmetic and a bound (mbrman's own walk adds
//! on-disk values without overflow checks).
//!
//! What is in each region (the filesystem) is the next layer's business: `fs::probe`.
//! A primary GPT header whose CRC is wrong is not fatal: the backup header at the end of
//! the disk is used and [`PartitionTable::notes`] says so.

use std::io::{self, Read, Seek, SeekFrom};

use serde::Serialize;

use crate::disk::BlockDevice;

/// A GPT with more entries than this is refused (the spec's minimum is 128; tools use 128).
const MAX_GPT_ENTRIES: u32 = 4096;
/// Logical partitions beyond this many are refused: the EBR chain is hostile or looping.
const MAX_LOGICAL: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("reading the partition table: {0}")]
    Io(#[from] io::Error),
    #[error("GPT: {0}")]
    Gpt(String),
    #[error("MBR: {0}")]
    Mbr(String),
    #[error("partitions {a} and {b} overlap (sectors {a_range} and {b_range}); the table is inconsistent: check it with `sfdisk --verify`")]
    Overlap {
        a: u32,
        b: u32,
        a_range: String,
        b_range: String,
    },
    #[error("partition {index} ({start}..{end} bytes) lies outside the disk ({disk} bytes)")]
    OutsideDisk {
        index: u32,
        start: u64,
        end: u64,
        disk: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    Gpt,
    Mbr,
    /// No partition table: the whole disk is one region (it may hold a filesystem).
    None,
}

/// One region of the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// GPT entry number (1-based), MBR number (1–4 primary, 5+ logical), 0 for a whole disk.
    pub index: u32,
    /// Offset in bytes from the start of the disk.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// GPT type GUID (upper-case, dashed), or the MBR type as `0x83`.
    pub type_id: String,
    /// A human name for the type ("Linux filesystem", "EFI System", ...).
    pub type_name: String,
    /// GPT partition name; empty for MBR.
    pub name: String,
    /// GPT unique partition GUID.
    pub uuid: Option<String>,
    /// MBR logical partition (inside an extended one).
    pub logical: bool,
}

impl Partition {
    /// An MBR extended partition: a container of logical partitions, holding no
    /// filesystem of its own.
    pub fn is_extended(&self) -> bool {
        u8::from_str_radix(self.type_id.trim_start_matches("0x"), 16)
            .is_ok_and(|t| self.type_id.starts_with("0x") && is_extended_type(t))
    }
}

fn is_extended_type(t: u8) -> bool {
    matches!(t, 0x05 | 0x0f | 0x85)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionTable {
    pub kind: TableKind,
    /// Logical sector size the table was found with.
    pub sector_size: u64,
    /// GPT disk GUID, or the MBR disk signature as 8 hex digits.
    pub disk_id: Option<String>,
    /// Partitions in table order; for `TableKind::None`, the whole disk as index 0.
    pub partitions: Vec<Partition>,
    /// Things that were repaired around while reading (e.g. the backup GPT header used).
    pub notes: Vec<String>,
}

/// `Read + Seek` over a device, for gptman and mbrman.
struct DevReader<'a> {
    dev: &'a dyn BlockDevice,
    pos: u64,
}

impl Read for DevReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.dev.len();
        if self.pos >= len {
            return Ok(0);
        }
        let n = ((len - self.pos) as usize).min(buf.len());
        self.dev.read_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for DevReader<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.dev.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

/// Reads the partition table of `dev`.
pub fn scan(dev: &dyn BlockDevice) -> Result<PartitionTable, PartitionError> {
    for ss in [512u64, 4096] {
        if let Some(t) = try_gpt(dev, ss)? {
            return check(dev, t);
        }
    }
    if let Some(t) = try_mbr(dev)? {
        return check(dev, t);
    }
    Ok(PartitionTable {
        kind: TableKind::None,
        sector_size: 512,
        disk_id: None,
        partitions: vec![Partition {
            index: 0,
            start: 0,
            size: dev.len(),
            type_id: String::new(),
            type_name: "whole disk".into(),
            name: String::new(),
            uuid: None,
            logical: false,
        }],
        notes: Vec::new(),
    })
}

/// Every partition inside the disk; no two overlapping.
fn check(dev: &dyn BlockDevice, t: PartitionTable) -> Result<PartitionTable, PartitionError> {
    let disk = dev.len();
    for p in &t.partitions {
        let end = p.start.checked_add(p.size);
        if end.is_none_or(|e| e > disk) {
            return Err(PartitionError::OutsideDisk {
                index: p.index,
                start: p.start,
                end: end.unwrap_or(u64::MAX),
                disk,
            });
        }
    }
    // An extended partition is a container: the logical partitions are inside it.
    let mut sorted: Vec<&Partition> = t.partitions.iter().filter(|p| !p.is_extended()).collect();
    sorted.sort_by_key(|p| (p.start, p.index));
    for w in sorted.windows(2) {
        if w[0].start + w[0].size > w[1].start {
            let range = |p: &Partition| {
                format!(
                    "{}..{}",
                    p.start / t.sector_size,
                    (p.start + p.size) / t.sector_size
                )
            };
            return Err(PartitionError::Overlap {
                a: w[0].index,
                b: w[1].index,
                a_range: range(w[0]),
                b_range: range(w[1]),
            });
        }
    }
    Ok(t)
}

fn guid_string(g: &[u8; 16]) -> String {
    // Mixed endian: the first three fields little-endian, the rest as stored.
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{}",
        u32::from_le_bytes(g[0..4].try_into().unwrap()),
        u16::from_le_bytes(g[4..6].try_into().unwrap()),
        u16::from_le_bytes(g[6..8].try_into().unwrap()),
        g[8],
        g[9],
        g[10..16]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    )
}

/// Names of the GPT partition types cloud images use (systemd's Discoverable Partitions
/// Specification and the UEFI spec).
pub fn gpt_type_name(guid: &str) -> &'static str {
    match guid {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI System",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux root (x86-64)",
        "44479540-F297-41B2-9AF7-D131D5F0458A" => "Linux root (x86)",
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE" => "Linux root (ARM64)",
        "69DAD710-2CE4-4E3C-B16C-21A1D49ABED3" => "Linux root (ARM)",
        "72EC70A6-CF74-40E6-BD49-4BDA08E8F224" => "Linux root (RISC-V 64)",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "Linux extended boot",
        "933AC7E1-2EB4-4F13-B844-0E14E2AEF915" => "Linux home",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" => "Linux LVM",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" => "Linux RAID",
        "CA7D7CCB-63ED-4C53-861C-1742536059CC" => "Linux LUKS",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" => "Microsoft reserved",
        "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC" => "Windows recovery",
        "6A82CB45-1DD2-11B2-99A6-080020736631" => "Solaris /usr or Apple ZFS",
        "516E7CB4-6ECF-11D6-8FF8-00022D09712B" => "FreeBSD data",
        _ => "unknown",
    }
}

/// The root partition as far as the table alone can tell: a GPT partition whose type is
/// "Linux root" for some architecture (the Discoverable Partitions Specification), with
/// the reason. Choosing among plain "Linux filesystem" partitions needs their contents:
/// `guest::layout::find_root` does that, one layer up.
pub fn find_root_by_type(table: &PartitionTable) -> Option<(&Partition, String)> {
    let mut roots = table
        .partitions
        .iter()
        .filter(|p| is_gpt_root_type(&p.type_id));
    let first = roots.next()?;
    let others = roots.count();
    let reason = if others == 0 {
        format!(
            "partition {} has the GPT type {} ({})",
            first.index, first.type_name, first.type_id
        )
    } else {
        format!(
            "partition {} is the first of {} partitions with a GPT Linux root type ({})",
            first.index,
            others + 1,
            first.type_name
        )
    };
    Some((first, reason))
}

/// Whether a GPT type says "this is a Linux root filesystem".
pub fn is_gpt_root_type(guid: &str) -> bool {
    gpt_type_name(guid).starts_with("Linux root")
}

pub fn mbr_type_name(t: u8) -> &'static str {
    match t {
        0x01 => "FAT12",
        0x04 | 0x06 | 0x0e => "FAT16",
        t if is_extended_type(t) => "Extended",
        0x07 => "HPFS/NTFS/exFAT",
        0x0b | 0x0c => "FAT32",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8e => "Linux LVM",
        0xa5 => "FreeBSD",
        0xda => "Non-FS data",
        0xee => "GPT protective",
        0xef => "EFI System",
        0xfd => "Linux RAID autodetect",
        _ => "unknown",
    }
}

/// Reads and checks one GPT header and its entry array (`lba` in sectors of `ss` bytes).
fn read_gpt_at(
    dev: &dyn BlockDevice,
    ss: u64,
    lba: u64,
) -> Result<(gptman::GPTHeader, Vec<gptman::GPTPartitionEntry>), String> {
    let mut r = DevReader {
        dev,
        pos: lba.checked_mul(ss).ok_or("header LBA overflows")?,
    };
    let header =
        gptman::GPTHeader::read_from(&mut r).map_err(|e| format!("header at LBA {lba}: {e}"))?;
    if header.number_of_partition_entries > MAX_GPT_ENTRIES {
        return Err(format!(
            "header at LBA {lba}: {} partition entries (more than {MAX_GPT_ENTRIES})",
            header.number_of_partition_entries
        ));
    }
    if header.size_of_partition_entry != 128 {
        return Err(format!(
            "header at LBA {lba}: partition entries of {} bytes (graft reads 128-byte entries)",
            header.size_of_partition_entry
        ));
    }
    let array_end = header
        .partition_entry_lba
        .checked_mul(ss)
        .and_then(|s| s.checked_add(header.number_of_partition_entries as u64 * 128));
    if array_end.is_none_or(|e| e > dev.len()) {
        return Err(format!("header at LBA {lba}: the partition entry array at LBA {} runs past the end of the disk", header.partition_entry_lba));
    }
    let entries = header
        .read_partitions(&mut r, ss)
        .map_err(|e| format!("entry array at LBA {}: {e}", header.partition_entry_lba))?;
    Ok((header, entries))
}

fn try_gpt(dev: &dyn BlockDevice, ss: u64) -> Result<Option<PartitionTable>, PartitionError> {
    if dev.len() < ss * 3 {
        return Ok(None);
    }
    let mut sig = [0u8; 8];
    dev.read_at(&mut sig, ss)?;
    let primary_present = &sig == b"EFI PART";
    let protective = ss == 512 && has_protective_mbr(dev)?;
    let last_lba = dev.len() / ss - 1;
    let mut notes = Vec::new();
    let (header, entries) = match read_gpt_at(dev, ss, 1) {
        Ok(found) => found,
        Err(primary_err) => {
            if !primary_present && !protective {
                return Ok(None);
            }
            match read_gpt_at(dev, ss, last_lba) {
                Ok(found) => {
                    notes.push(format!(
                        "the primary GPT is damaged ({primary_err}); using the backup header at LBA {last_lba}. Repair with `sgdisk -e` or `gdisk` (r, b, w)"
                    ));
                    found
                }
                Err(backup_err) => {
                    return Err(PartitionError::Gpt(format!(
                        "primary: {primary_err}; backup: {backup_err}"
                    )));
                }
            }
        }
    };
    let mut partitions = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.is_unused() {
            continue;
        }
        let index = i as u32 + 1;
        if e.ending_lba < e.starting_lba {
            return Err(PartitionError::Gpt(format!(
                "partition {index} ends (LBA {}) before it starts (LBA {})",
                e.ending_lba, e.starting_lba
            )));
        }
        let start = e.starting_lba.checked_mul(ss);
        let size = (e.ending_lba - e.starting_lba)
            .checked_add(1)
            .and_then(|n| n.checked_mul(ss));
        let (Some(start), Some(size)) = (start, size) else {
            return Err(PartitionError::OutsideDisk {
                index,
                start: u64::MAX,
                end: u64::MAX,
                disk: dev.len(),
            });
        };
        let type_id = guid_string(&e.partition_type_guid);
        partitions.push(Partition {
            index,
            start,
            size,
            type_name: gpt_type_name(&type_id).to_string(),
            type_id,
            name: e.partition_name.as_str().trim_end_matches('\0').to_string(),
            uuid: Some(guid_string(&e.unique_partition_guid)),
            logical: false,
        });
    }
    Ok(Some(PartitionTable {
        kind: TableKind::Gpt,
        sector_size: ss,
        disk_id: Some(guid_string(&header.disk_guid)),
        partitions,
        notes,
    }))
}

fn has_protective_mbr(dev: &dyn BlockDevice) -> io::Result<bool> {
    if dev.len() < 512 {
        return Ok(false);
    }
    let mut s = [0u8; 512];
    dev.read_at(&mut s, 0)?;
    Ok(s[510] == 0x55 && s[511] == 0xAA && (0..4).any(|i| s[446 + i * 16 + 4] == 0xEE))
}

fn try_mbr(dev: &dyn BlockDevice) -> Result<Option<PartitionTable>, PartitionError> {
    if dev.len() < 512 {
        return Ok(None);
    }
    let mut s = [0u8; 512];
    dev.read_at(&mut s, 0)?;
    if s[510] != 0x55 || s[511] != 0xAA {
        return Ok(None);
    }
    // A FAT or NTFS boot sector also ends in 55 AA; its "partition entries" are code.
    if is_fs_boot_sector(&s) {
        return Ok(None);
    }
    let mut r = DevReader { dev, pos: 0 };
    let header = match mbrman::MBRHeader::read_from(&mut r) {
        Ok(h) => h,
        Err(e) => return Err(PartitionError::Mbr(format!("sector 0: {e}"))),
    };
    let ss = 512u64;
    let mut partitions = Vec::new();
    let mut extended = None;
    for (i, e) in header.iter() {
        if e.is_unused() {
            continue;
        }
        if e.sectors == 0 {
            continue;
        }
        let p = Partition {
            index: i as u32,
            start: e.starting_lba as u64 * ss,
            size: e.sectors as u64 * ss,
            type_id: format!("{:#04x}", e.sys),
            type_name: mbr_type_name(e.sys).to_string(),
            name: String::new(),
            uuid: None,
            logical: false,
        };
        if e.is_extended() {
            if extended.is_some() {
                return Err(PartitionError::Mbr(
                    "more than one extended partition".into(),
                ));
            }
            extended = Some((e.starting_lba as u64, e.sectors as u64));
        }
        partitions.push(p);
    }
    if let Some((ext_start, ext_len)) = extended {
        partitions.extend(walk_ebrs(dev, ext_start, ext_len)?);
    }
    let disk_id = Some(format!("{:08x}", u32::from_le_bytes(header.disk_signature)));
    Ok(Some(PartitionTable {
        kind: TableKind::Mbr,
        sector_size: ss,
        disk_id,
        partitions,
        notes: Vec::new(),
    }))
}

fn is_fs_boot_sector(s: &[u8; 512]) -> bool {
    let bps = u16::from_le_bytes([s[11], s[12]]);
    let sane_bpb = matches!(bps, 512 | 1024 | 2048 | 4096) && s[13] != 0 && s[13].is_power_of_two();
    &s[3..11] == b"NTFS    " || (sane_bpb && (&s[82..87] == b"FAT32" || &s[54..57] == b"FAT"))
}

/// Follows the EBR chain: each EBR's first entry is a logical partition relative to the EBR,
/// its second the next EBR relative to the extended partition's start.
fn walk_ebrs(
    dev: &dyn BlockDevice,
    ext_start: u64,
    ext_len: u64,
) -> Result<Vec<Partition>, PartitionError> {
    let ss = 512u64;
    let mut out = Vec::new();
    let mut rel = 0u64;
    loop {
        if out.len() >= MAX_LOGICAL {
            return Err(PartitionError::Mbr(format!(
                "more than {MAX_LOGICAL} logical partitions: the EBR chain loops or is hostile"
            )));
        }
        if rel >= ext_len {
            return Err(PartitionError::Mbr(format!(
                "an EBR at sector {} lies outside the extended partition",
                ext_start + rel
            )));
        }
        let ebr_lba = ext_start + rel;
        let Some(off) = ebr_lba.checked_mul(ss).filter(|o| o + ss <= dev.len()) else {
            return Err(PartitionError::Mbr(format!(
                "the EBR at sector {ebr_lba} is past the end of the disk"
            )));
        };
        let mut s = [0u8; 512];
        dev.read_at(&mut s, off)?;
        if s[510] != 0x55 || s[511] != 0xAA {
            if rel == 0 {
                break; // an empty extended partition needs no EBR
            }
            return Err(PartitionError::Mbr(format!(
                "the EBR at sector {ebr_lba} has no 55 AA signature"
            )));
        }
        let entry = |k: usize| {
            let b = &s[446 + k * 16..446 + k * 16 + 16];
            (
                b[4],
                u32::from_le_bytes(b[8..12].try_into().unwrap()) as u64,
                u32::from_le_bytes(b[12..16].try_into().unwrap()) as u64,
            )
        };
        let (sys, lba, sectors) = entry(0);
        if sys != 0 && sectors != 0 {
            if (ebr_lba + lba + sectors) > ext_start + ext_len {
                return Err(PartitionError::Mbr(format!("the logical partition described at sector {ebr_lba} ends past its extended partition")));
            }
            out.push(Partition {
                index: 5 + out.len() as u32,
                start: (ebr_lba + lba) * ss,
                size: sectors * ss,
                type_id: format!("{sys:#04x}"),
                type_name: mbr_type_name(sys).to_string(),
                name: String::new(),
                uuid: None,
                logical: true,
            });
        }
        let (next_sys, next, _) = entry(1);
        if next_sys == 0 || next == 0 {
            break;
        }
        if next <= rel {
            return Err(PartitionError::Mbr(format!(
                "the EBR at sector {ebr_lba} points back to sector {} (a loop)",
                ext_start + next
            )));
        }
        rel = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDevice;

    fn mbr_entry(s: &mut [u8], k: usize, sys: u8, lba: u32, sectors: u32) {
        let b = &mut s[446 + k * 16..446 + k * 16 + 16];
        b[4] = sys;
        b[8..12].copy_from_slice(&lba.to_le_bytes());
        b[12..16].copy_from_slice(&sectors.to_le_bytes());
    }

    fn sig(s: &mut [u8]) {
        s[510] = 0x55;
        s[511] = 0xAA;
    }

    #[test]
    fn mbr_with_logical_partitions() {
        let mut d = vec![0u8; 4 << 20];
        sig(&mut d[..512]);
        mbr_entry(&mut d[..512], 0, 0x83, 2048, 2048);
        mbr_entry(&mut d[..512], 1, 0x05, 4096, 4096);
        // EBR 1 at 4096: logical at +1, 1000 sectors; next EBR at ext+2048.
        let e1 = 4096 * 512;
        sig(&mut d[e1..e1 + 512]);
        mbr_entry(&mut d[e1..e1 + 512], 0, 0x83, 1, 1000);
        mbr_entry(&mut d[e1..e1 + 512], 1, 0x05, 2048, 2048);
        let e2 = (4096 + 2048) * 512;
        sig(&mut d[e2..e2 + 512]);
        mbr_entry(&mut d[e2..e2 + 512], 0, 0x82, 1, 500);
        let t = scan(&MemDevice::new(d)).unwrap();
        assert_eq!(t.kind, TableKind::Mbr);
        let idx: Vec<u32> = t.partitions.iter().map(|p| p.index).collect();
        assert_eq!(idx, [1, 2, 5, 6]);
        assert_eq!(t.partitions[2].start, 4097 * 512);
        assert_eq!(t.partitions[3].type_name, "Linux swap");
    }

    #[test]
    fn ebr_loop_and_overlap_are_errors() {
        let mut d = vec![0u8; 4 << 20];
        sig(&mut d[..512]);
        mbr_entry(&mut d[..512], 0, 0x05, 2048, 4096);
        let e1 = 2048 * 512;
        sig(&mut d[e1..e1 + 512]);
        mbr_entry(&mut d[e1..e1 + 512], 0, 0x83, 1, 10);
        mbr_entry(&mut d[e1..e1 + 512], 1, 0x05, 0, 10); // points to itself: treated as end
        let e = scan(&MemDevice::new(d.clone()));
        assert!(e.is_ok());
        mbr_entry(&mut d[e1..e1 + 512], 1, 0x05, 100, 10);
        let e2 = (2048 + 100) * 512;
        sig(&mut d[e2..e2 + 512]);
        mbr_entry(&mut d[e2..e2 + 512], 1, 0x05, 50, 10); // backwards: a loop
        let err = scan(&MemDevice::new(d.clone())).unwrap_err().to_string();
        assert!(err.contains("loop"), "{err}");

        let mut d = vec![0u8; 4 << 20];
        sig(&mut d[..512]);
        mbr_entry(&mut d[..512], 0, 0x83, 2048, 2048);
        mbr_entry(&mut d[..512], 1, 0x83, 3000, 100);
        let err = scan(&MemDevice::new(d.clone())).unwrap_err().to_string();
        assert!(err.contains("overlap"), "{err}");
        mbr_entry(&mut d[..512], 1, 0x83, 3000, 100_000);
        let err = scan(&MemDevice::new(d)).unwrap_err().to_string();
        assert!(
            err.contains("outside the disk") || err.contains("overlap"),
            "{err}"
        );
    }

    #[test]
    fn no_table_is_the_whole_disk() {
        let t = scan(&MemDevice::new(vec![0u8; 8192])).unwrap();
        assert_eq!(t.kind, TableKind::None);
        assert_eq!(t.partitions.len(), 1);
        assert_eq!(t.partitions[0].size, 8192);
        // Tiny devices too.
        assert_eq!(
            scan(&MemDevice::new(vec![0u8; 3])).unwrap().kind,
            TableKind::None
        );
    }

    #[test]
    fn guid_text_is_mixed_endian() {
        let g = [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ];
        assert_eq!(guid_string(&g), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    }
}
