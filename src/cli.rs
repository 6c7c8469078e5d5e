//! Argument parsing only. Each subcommand's arguments are a struct here; the work is
//! done by the function of the same name in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes:
  0  success (for `verify` and `lock --check`: verified, up to date)
  1  error: bad input, I/O, network; the message says what and where
  2  usage error: unknown flag or missing argument
  3  checked and differs: `lock --check` found the lockfile stale, `verify` found
     the image or payload different from what it should be

Pipeline:
  graft lock                     recipes/heat-agent.toml -> lockfiles/heat-agent.lock
  graft fetch                    every locked artifact into the cache, hash-checked
  graft build --target debian-12 -o payload.tar.gz
  graft inject base.qcow2 -o out.qcow2
  graft verify out.qcow2

Python packages come from whatever index pip is configured with (pip.conf,
PIP_INDEX_URL, --index-url); graft names no index host itself.";

#[derive(Debug, Parser)]
#[command(
    name = "graft",
    version,
    about = "Put a pinned, reproducible agent payload into an existing cloud image, offline",
    long_about = "graft pins every upstream component of an agent (the OpenStack Heat \
software-config agent by default) in a lockfile, assembles a bit-reproducible payload \
from it, and injects that payload into an existing qcow2, VHD or raw image without \
booting it, without root, a chroot, a loop device or a helper VM. It then verifies an \
image against the payload and a payload against the lockfile.",
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// More output: repeat for more detail (-v: what is done, -vv: debugging).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors; no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print the result as one JSON document on standard output, for pipelines.
    #[arg(long, global = true)]
    pub json: bool,

    /// Where downloaded artifacts are kept, by sha256.
    /// Default: $XDG_CACHE_HOME/graft, else ~/.cache/graft.
    #[arg(long, global = true, env = "GRAFT_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Use no network: everything must already be in the cache.
    #[arg(long, global = true)]
    pub offline: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve every component of a recipe for each target and write the lockfile.
    #[command(after_help = "\
Examples:
  graft lock                                   lock every target of recipes/heat-agent.toml
  graft lock --target debian-12                re-lock one target, keep the others
  graft lock --upgrade-package requests        move one distribution to its newest release
  graft lock --check                           exit 3 if the lockfile is stale (for CI)
  graft lock --index-url file:///srv/simple    lock against a local PEP 503 mirror

Resolution uses pip's own resolver (pip install --dry-run --report, wheels only, with the
target's Python version, implementation, ABI and every platform tag its glibc implies),
so the index, mirrors, certificates and proxies are whatever pip is configured with.
Existing pins are kept unless --upgrade or --upgrade-package says otherwise.")]
    Lock(LockArgs),

    /// Print a target's pins as a pip requirements file with --hash lines.
    #[command(after_help = "\
Example:
  graft export --target debian-12 > req.txt && pip install --require-hashes -r req.txt

Only the Python distributions are exported; data archives (heat-agents) and URL
artifacts are not installable by pip and are left out.")]
    Export(ExportArgs),

    /// Download every locked artifact into the content-addressed cache, checking each.
    #[command(after_help = "\
Examples:
  graft fetch                                  every target of lockfiles/heat-agent.lock
  graft fetch --target debian-12 --offline     fail, listing what is missing, if not cached

Artifacts land in <cache>/sha256/<hex>; each is checked against the lockfile's sha256 and
size before it is used. A cache entry that no longer matches its hash is discarded and
fetched again.")]
    Fetch(FetchArgs),

    /// Assemble the bit-reproducible payload (tar.gz + manifest) for one target.
    #[command(after_help = "\
Example:
  graft build --target debian-12 -o payload.tar.gz

Writes payload.tar.gz and payload.manifest.json beside it. The same lockfile gives the
same bytes on any machine, in any directory, under any umask, time zone or locale.")]
    Build(BuildArgs),

    /// Describe an image: format, partitions, filesystems, OS, Python, init system.
    #[command(after_help = "\
Examples:
  graft inspect debian-12.qcow2
  graft inspect --json disk.vhd | jq .os")]
    Inspect(InspectArgs),

    /// List a directory inside an image (like virt-ls).
    #[command(after_help = "Example:\n  graft ls debian-12.qcow2 /etc/systemd/system")]
    Ls(LsArgs),

    /// Print a file inside an image (like virt-cat).
    #[command(after_help = "Example:\n  graft cat debian-12.qcow2 /etc/os-release")]
    Cat(CatArgs),

    /// Copy a host directory tree into an image's filesystem (like virt-copy-in).
    #[command(
        name = "copy-in",
        after_help = "\
Example:
  graft copy-in base.qcow2 ./tree /opt/tool -o out.qcow2 --owner 0:0 --epoch 1700000000

Modes come from the host; owner and times from the options, so the result is
reproducible. The input image is not modified unless --in-place is given."
    )]
    CopyIn(CopyInArgs),

    /// Put the payload and its service into an image, offline.
    #[command(after_help = "\
Examples:
  graft inject base.qcow2 -o agent.qcow2                 target picked from the image
  graft inject base.qcow2 -o azure.vhd --format vhd --vhd-type fixed
  graft inject base.qcow2 -o overlay.qcow2 --overlay     qcow2 backed by base.qcow2

The input image is never modified unless --in-place is given; the output is written
under a temporary name and renamed into place only when complete.")]
    Inject(InjectArgs),

    /// Check an image against its manifest, or a payload or image against the lockfile.
    #[command(after_help = "\
Examples:
  graft verify agent.qcow2                              against the manifest in the guest
  graft verify --rebuild payload.tar.gz --target debian-12
  graft verify agent.qcow2 --lock lockfiles/heat-agent.lock --base base.qcow2

Exit code 0 means verified, 3 means it differs (what differs is listed).")]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The recipe to lock.
    #[arg(long, default_value = "recipes/heat-agent.toml", value_name = "FILE")]
    pub recipe: PathBuf,

    /// The lockfile to write (replaced atomically).
    #[arg(
        short,
        long,
        default_value = "lockfiles/heat-agent.lock",
        value_name = "FILE"
    )]
    pub output: PathBuf,

    /// Lock only these targets (repeatable); the others keep their entries.
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,

    /// Ignore every existing pin and take the newest allowed releases.
    #[arg(long, conflicts_with = "upgrade_packages")]
    pub upgrade: bool,

    /// Let this distribution move to its newest allowed release (repeatable).
    #[arg(long = "upgrade-package", value_name = "NAME")]
    pub upgrade_packages: Vec<String>,

    /// Write nothing; exit 3 naming what differs if the lockfile is stale.
    #[arg(long)]
    pub check: bool,

    /// The Python interpreter whose pip resolves (default: python3 on PATH).
    #[arg(long, env = "GRAFT_PYTHON", value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// The package index (simple API) to lock against instead of pip's configured one;
    /// `file:///dir` names a local PEP 503 tree.
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The lockfile to read.
    #[arg(long, default_value = "lockfiles/heat-agent.lock", value_name = "FILE")]
    pub lock: PathBuf,

    /// The target whose pins are printed.
    #[arg(long, value_name = "NAME")]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The lockfile to read.
    #[arg(long, default_value = "lockfiles/heat-agent.lock", value_name = "FILE")]
    pub lock: PathBuf,

    /// The recipe the lockfile was made from (URL artifacts' addresses live there).
    #[arg(long, default_value = "recipes/heat-agent.toml", value_name = "FILE")]
    pub recipe: PathBuf,

    /// Fetch only these targets (repeatable). Default: every target.
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,

    /// The package index to use instead of pip's configured one.
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,

    /// How many downloads run at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The lockfile to read.
    #[arg(long, default_value = "lockfiles/heat-agent.lock", value_name = "FILE")]
    pub lock: PathBuf,

    /// The recipe the lockfile was made from.
    #[arg(long, default_value = "recipes/heat-agent.toml", value_name = "FILE")]
    pub recipe: PathBuf,

    /// The target to build for.
    #[arg(long, value_name = "NAME")]
    pub target: String,

    /// The payload archive to write; the manifest goes beside it.
    #[arg(short, long, default_value = "payload.tar.gz", value_name = "FILE")]
    pub output: PathBuf,

    /// Build for another guest prefix than the recipe's (tests use a temporary one).
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<String>,

    /// The package index to use instead of pip's configured one.
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: qcow2, VHD or raw.
    pub image: PathBuf,
    /// Benchmarking aid: read the whole virtual disk through graft's block layer and
    /// print how long it took, instead of inspecting.
    #[arg(long, hide = true)]
    pub read_all: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// The image: qcow2, VHD or raw.
    pub image: PathBuf,
    /// An absolute path inside the guest.
    pub path: String,
    /// Long listing: mode, owner, size, link target.
    #[arg(short, long)]
    pub long: bool,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    /// The image: qcow2, VHD or raw.
    pub image: PathBuf,
    /// An absolute path inside the guest.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Where to write the result. Default format: the input's.
    #[arg(short, long, value_name = "FILE", required_unless_present = "in_place")]
    pub output: Option<PathBuf>,

    /// Modify the input image itself (nothing else ever does).
    #[arg(long, conflicts_with_all = ["output", "overlay"])]
    pub in_place: bool,

    /// Write a qcow2 whose backing file is the input, holding only the changes.
    #[arg(long)]
    pub overlay: bool,

    /// Output container format.
    #[arg(long, value_enum)]
    pub format: Option<ImageFormat>,

    /// VHD kind when the output is VHD.
    #[arg(long, value_enum, default_value_t = VhdType::Dynamic)]
    pub vhd_type: VhdType,
}

#[derive(Debug, Args)]
pub struct CopyInArgs {
    /// The image: qcow2, VHD or raw.
    pub image: PathBuf,
    /// The host directory whose contents are copied.
    pub host_dir: PathBuf,
    /// The guest directory that receives them (created if missing).
    pub guest_dir: String,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Owner of everything copied, UID:GID.
    #[arg(long, default_value = "0:0", value_name = "UID:GID")]
    pub owner: String,
    /// Timestamps of everything copied, seconds since 1970.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub epoch: i64,
    /// Replace files that already exist instead of refusing.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Args)]
pub struct InjectArgs {
    /// The base image: qcow2, VHD or raw.
    pub image: PathBuf,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Build the payload from this lockfile.
    #[arg(long, value_name = "FILE", conflicts_with = "payload")]
    pub lock: Option<PathBuf>,
    /// The recipe the lockfile was made from.
    #[arg(long, default_value = "recipes/heat-agent.toml", value_name = "FILE")]
    pub recipe: PathBuf,
    /// The lockfile target, or `auto` to pick the one that fits the image.
    #[arg(long, default_value = "auto", value_name = "NAME|auto")]
    pub target: String,
    /// Inject an already built payload (its manifest beside it).
    #[arg(long, value_name = "FILE")]
    pub payload: Option<PathBuf>,
    /// Replace files that already exist at payload paths instead of refusing.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image to verify (not needed with --rebuild).
    #[arg(required_unless_present = "rebuild")]
    pub image: Option<PathBuf>,
    /// The manifest to check against. Default: the one inside the guest.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Rebuild this payload from the lockfile and compare byte for byte.
    #[arg(long, value_name = "PAYLOAD")]
    pub rebuild: Option<PathBuf>,
    /// The lockfile (for --rebuild and --base).
    #[arg(long, default_value = "lockfiles/heat-agent.lock", value_name = "FILE")]
    pub lock: PathBuf,
    /// The recipe the lockfile was made from.
    #[arg(long, default_value = "recipes/heat-agent.toml", value_name = "FILE")]
    pub recipe: PathBuf,
    /// The target (for --rebuild; with --base, default: picked from the image).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Re-inject into this base image and compare the result with IMAGE byte for byte.
    #[arg(long, value_name = "IMAGE")]
    pub base: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    Qcow2,
    Vhd,
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VhdType {
    Fixed,
    Dynamic,
}
