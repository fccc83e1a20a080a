//! Command-line definitions. Each flag's help lives next to it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::Format;

#[derive(Debug, Parser)]
#[command(
    name = "airgap-verify",
    version,
    about = "Verify an air-gapped release archive and the services inside the perimeter, offline.",
    after_help = "Exit codes: 0 ready (warnings allowed), 1 not ready (a check failed), 2 usage, input or configuration error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a release archive (.tar, .tar.gz, .tar.zst) or a staged folder in one streaming pass.
    Bundle(BundleArgs),
    /// Create a release manifest (manifest.json) from a trusted archive or folder.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Probe the perimeter's services (DNS, NTP, SMTP, Git over HTTPS, OCI registry, S3) from this machine, with no internet.
    Services(ServicesArgs),
    /// Prove the air gap: every endpoint and DNS answer inside allowed_networks, the proxies and what they route; with --probe-internet, prove that nothing outside answers.
    Egress(EgressArgs),
    /// The main job: verify the release archive, probe every configured service and check the egress, in one report.
    Check(CheckArgs),
    /// Test the firewall flows this host starts (profile table), against the cluster's hosts.
    Flows(FlowsArgs),
    /// Answer flow tests on every port of a node or load-balancer backend, until a deadline or Ctrl-C.
    Listen(ListenArgs),
    /// Check this host as a host of the cluster: the packages the vendor requires on nodes, the ports it must serve free or held by the expected service.
    Host(HostArgs),
    /// Merge hosts' JSON reports (`flows`, `services`, ... run on each host) into one report of
    /// the cluster: every finding with its host, the flow matrix, duplicate host identities and
    /// every clock against the cluster's median.
    Merge(MergeArgs),
    /// Check every host of the cluster through Ansible (copy, host, listen, flows, services) and merge their reports into one.
    Cluster(ClusterArgs),
    /// Write a commented perimeter.yml template (or its JSON Schema with --schema).
    Init(InitArgs),
    /// Print what a finding code means and how to fix it.
    Explain(ExplainArgs),
    /// Write the Sekoia-shaped sample release used by the demo, the tests and the benchmark.
    Sample(SampleArgs),
    /// Sigstore bundles, verified offline.
    #[command(subcommand)]
    Sigstore(SigstoreCommand),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The JSON reports to merge, as written by `--format json`. `NAME=FILE` names the host the
    /// report comes from (default: the host name the report recorded); several reports may name
    /// one host.
    #[arg(value_name = "[NAME=]REPORT.json", required = true, value_parser = crate::merge::parse_report_file)]
    pub reports: Vec<crate::merge::ReportFile>,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Report format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Write the report to FILE instead of standard output. `FORMAT=FILE` writes one more
    /// report in that format and leaves standard output to --format; repeatable, e.g.
    /// `--output json=r.json --output junit=r.xml`. A file is never an input of the run, is
    /// created before the run starts, and is replaced only by a complete report.
    #[arg(long, value_name = "[FORMAT=]FILE", value_parser = parse_output)]
    pub output: Vec<OutputSpec>,
    /// Lowest status that makes the run fail (exit 1). `warn` turns warnings into failures.
    #[arg(long, value_enum, default_value = "fail")]
    pub fail_on: FailOn,
    /// Never draw a progress bar (it is drawn on standard error when that is a terminal,
    /// whatever the formats).
    #[arg(long)]
    pub no_progress: bool,
    /// Re-grade the problems of finding CODE as warnings (repeatable; `explain --list` shows the
    /// codes). Wins over perimeter.yml `severity:`.
    #[arg(long = "warn", value_name = "CODE", value_parser = crate::finding::parse_code)]
    pub warn_codes: Vec<crate::finding::Code>,
    /// Re-grade the problems of finding CODE as failures (repeatable).
    #[arg(long = "fail", value_name = "CODE", value_parser = crate::finding::parse_code)]
    pub fail_codes: Vec<crate::finding::Code>,
    /// Accept finding CODE: its problems pass (repeatable). The report keeps the original status.
    #[arg(long = "allow", value_name = "CODE", value_parser = crate::finding::parse_code)]
    pub allow_codes: Vec<crate::finding::Code>,
    /// Human format: only the failures and the verdict.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Human format: list every passing finding too (by default they are counted per family).
    #[arg(short, long)]
    pub verbose: bool,
    /// When to colour the human report. `auto` colours a terminal unless NO_COLOR is set.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
}

/// One `--output`: a file, and the format written to it (`None`: `--format`,
/// and standard output then carries no report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub format: Option<Format>,
    pub path: PathBuf,
}

/// `FILE` or `FORMAT=FILE`; a prefix that names no format is part of the
/// file name (`a=b.json`).
pub fn parse_output(s: &str) -> Result<OutputSpec, String> {
    if let Some((name, path)) = s.split_once('=') {
        if let Ok(format) = Format::from_str(name, true) {
            if path.is_empty() {
                return Err(format!("`{s}`: no file after `{name}=`"));
            }
            return Ok(OutputSpec {
                format: Some(format),
                path: PathBuf::from(path),
            });
        }
    }
    if s.is_empty() {
        return Err("an empty file name".into());
    }
    Ok(OutputSpec {
        format: None,
        path: PathBuf::from(s),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Warn,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The archive or staged folder to verify (`-`: the archive on standard input). Its format
    /// is detected from its first bytes.
    pub path: PathBuf,
    #[command(flatten)]
    pub archive: ArchiveArgs,
    /// Check the keys and the checksum and list what the pass would verify, without
    /// opening the archive or writing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// How an archive is verified: shared by `bundle` and `check --bundle`, so
/// the two take exactly the same flags.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Checksum file in sha256sum format (default: PATH.sha256, else a SHA256SUMS beside PATH that
    /// names it).
    #[arg(long, value_name = "FILE", conflicts_with = "sha256")]
    pub checksum: Option<PathBuf>,
    /// Expected SHA-256 of the archive, as 64 hex digits (optionally `sha256:HEX`).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Also decompress compressed image layers and check them against the config's diff_ids.
    #[arg(long, conflicts_with = "no_content")]
    pub deep: bool,
    /// Do not open nested archives (images, charts, content bundles) nor scan text files for
    /// external references: verify only the container, the entries and the manifests.
    /// Faster; for a quick integrity check.
    #[arg(long)]
    pub no_content: bool,
    /// Vendor's minisign public key (the key string `RW...` or a .pub file): checks
    /// PATH.minisig and manifest.json.minisig inside the archive.
    #[arg(long, value_name = "KEY")]
    pub pubkey: Option<String>,
    /// Vendor's cosign public key (PEM): checks PATH.sig (cosign sign-blob --key). Offline: no
    /// transparency log is consulted.
    #[arg(long, value_name = "FILE")]
    pub cosign_key: Option<PathBuf>,
    #[command(flatten)]
    pub sigstore: SigstoreArgs,
    /// A host inside the perimeter, for the external-reference scan (repeatable).
    #[arg(long, value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// A domain inside the perimeter, with all its sub-domains (repeatable).
    #[arg(long, value_name = "DOMAIN")]
    pub allow_domain: Vec<String>,
    /// External references (images, URLs outside the perimeter) fail instead of warn.
    #[arg(long)]
    pub deny_external: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

impl ArchiveArgs {
    /// The library's options for verifying `path` with these flags.
    pub fn options(
        self,
        path: PathBuf,
    ) -> Result<crate::bundle::BundleOptions, crate::error::InputError> {
        use crate::bundle::checksum::ChecksumSource;
        let checksum = match (self.checksum, self.sha256) {
            (Some(f), _) => ChecksumSource::File(f),
            (None, Some(h)) => ChecksumSource::Hex(h),
            (None, None) => ChecksumSource::Auto,
        };
        let mut limits = crate::bundle::Limits {
            deep: self.deep,
            perimeter: std::sync::Arc::new(crate::bundle::refscan::Perimeter {
                hosts: self.allow_host,
                domains: self.allow_domain,
                deny_external: self.deny_external,
            }),
            ..crate::bundle::Limits::default()
        };
        self.limits.apply(&mut limits, self.no_content);
        Ok(crate::bundle::BundleOptions {
            path,
            checksum,
            limits,
            signatures: crate::bundle::signing::SignatureOptions {
                minisign_key: self.pubkey,
                cosign_key: self.cosign_key,
                sigstore: self.sigstore.options()?,
            },
        })
    }
}

/// Resource limits of the archive pass. Each one that is hit is a failing
/// finding that names the member and the flag; sizes take units (`64MiB`).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest manifest (manifest.json, SHA256SUMS) read; all manifests together may take
    /// twice this.
    #[arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = parse_size)]
    pub max_manifest_size: u64,
    /// Deepest nesting of archives opened (1: archives in the release; 2: archives in those...).
    /// Deeper ones are hashed, not opened, and reported. --no-content opens none.
    #[arg(long, value_name = "N", default_value_t = crate::bundle::walk::DEFAULT_MAX_DEPTH)]
    pub max_depth: u32,
    /// Most tar bytes (after decompression) read from one nested archive.
    #[arg(long, value_name = "BYTES", default_value = "32GiB", value_parser = parse_size)]
    pub max_nested_bytes: u64,
    /// Most entries read from one nested archive.
    #[arg(long, value_name = "N", default_value_t = crate::bundle::walk::DEFAULT_MAX_NESTED_ENTRIES)]
    pub max_nested_entries: u64,
    /// Most entries read from the release archive itself (each costs a small record in memory).
    #[arg(long, value_name = "N", default_value_t = crate::bundle::walk::DEFAULT_MAX_ENTRIES)]
    pub max_entries: u64,
    /// Largest decompressed-to-compressed ratio of any gzip or zstd stream (or Git pack), judged past
    /// its first 16 MiB of output (stops decompression bombs). 0 disables the limit.
    #[arg(long, value_name = "RATIO", default_value_t = crate::bundle::walk::DEFAULT_MAX_EXPANSION_RATIO)]
    pub max_expansion_ratio: u64,
}

impl LimitArgs {
    /// The library's limits with these values; `no_content` opens no nested archive.
    pub fn apply(&self, limits: &mut crate::bundle::Limits, no_content: bool) {
        limits.max_manifest_size = self.max_manifest_size;
        limits.max_depth = if no_content { 0 } else { self.max_depth };
        limits.max_nested_bytes = self.max_nested_bytes;
        limits.max_nested_entries = self.max_nested_entries;
        limits.max_entries = self.max_entries;
        limits.max_expansion_ratio = self.max_expansion_ratio;
    }
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Write a manifest.json listing every file of a trusted archive or folder (size and SHA-256).
    Create(ManifestCreateArgs),
}

#[derive(Debug, Args)]
pub struct ManifestCreateArgs {
    /// The trusted archive or folder.
    pub path: PathBuf,
    /// Folder inside the input that the manifest describes (default: all of it).
    #[arg(long, value_name = "DIR", default_value = "")]
    pub root: String,
    /// Product name recorded in the manifest (default: the input's file name).
    #[arg(long)]
    pub product: Option<String>,
    /// Version recorded in the manifest.
    #[arg(
        long = "release-version",
        value_name = "VERSION",
        default_value = "unversioned"
    )]
    pub release_version: String,
    /// Write the manifest to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A finding code such as bundle:digest-mismatch. Omit with --list.
    #[arg(required_unless_present_any = ["list", "markdown"])]
    pub code: Option<String>,
    /// List every code with its default status.
    #[arg(long)]
    pub list: bool,
    /// Print docs/checks.md (every code, as Markdown).
    #[arg(long, hide = true)]
    pub markdown: bool,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Folder to write into; created if missing.
    pub dir: PathBuf,
    /// Approximate total size of the release, e.g. 5MiB or 1GiB (benchmarks use large sizes).
    #[arg(long, value_name = "SIZE", default_value = "4MiB", value_parser = parse_size)]
    pub size: u64,
    /// Also write a gzip-compressed copy (.tar.gz) with its own .sha256.
    #[arg(long)]
    pub gzip: bool,
}

/// Parses sizes such as `512`, `4MiB`, `1GiB`, `10MB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 4MiB or 1GiB"))?;
    // Units in any case (`16mib`, `1gib`, `10MB`): sizes are typed by hand.
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" | "ki" => 1 << 10,
        "mib" | "m" | "mi" => 1 << 20,
        "gib" | "g" | "gi" => 1 << 30,
        "tib" | "t" | "ti" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
            "unknown size unit {:?} (use KiB, MiB, GiB or TiB; KB, MB, GB, TB are powers of 1000)",
            unit.trim()
        ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// The perimeter description (see `airgap-verify init` and docs/config.md).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The vendor's Sekoia config.yml (1.0.0 or 0.0.1); targets are derived from it.
    #[arg(long, value_name = "FILE")]
    pub sekoia_config: Option<PathBuf>,
    /// PEM bundle of the perimeter's CA; overrides `ca_bundle`. Only this CA is trusted.
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Also trust the machine's CA store (/etc/ssl/certs/ca-certificates.crt).
    #[arg(long)]
    pub system_roots: bool,
    /// Deadline of each step (connect, handshake, each read), e.g. `2s`, `500ms`; overrides the configuration.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// A DNS server that resolves public names fails instead of warning.
    #[arg(long)]
    pub strict_airgap: bool,
    /// Really send one test message through each SMTP relay that has `mail_from` and `rcpt_to`.
    #[arg(long)]
    pub send_test_mail: bool,
    /// Prove write access by writing throwaway data and removing it: a Git ref, a tiny registry image (the S3 probe always writes one object).
    #[arg(long)]
    pub write_probe: bool,
    /// Measure the S3 storage against the vendor's requirements (64 MiB each way, 200 small objects; everything written is removed).
    #[arg(long)]
    pub s3_benchmark: bool,
    /// Validate the configuration and list the probes it implies (with `check`, also the
    /// archive's checks), without contacting anything, opening the archive or writing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The release archive (or staged folder) to verify; its images are then looked up in the
    /// registry. Every flag of `bundle` applies to it.
    #[arg(long, value_name = "ARCHIVE")]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub archive: ArchiveArgs,
    /// The role this host plays for the flows, when the configuration defines them.
    #[arg(long, value_enum, default_value = "orchestration")]
    pub role: FlowRole,
    /// Also try to reach the internet (public names, TCP 443, public NTP), as `egress --probe-internet` does.
    #[arg(long)]
    pub probe_internet: bool,
    #[command(flatten)]
    pub services: ServicesArgs,
}

#[derive(Debug, Args)]
pub struct EgressArgs {
    /// The perimeter description (see `airgap-verify init` and docs/config.md).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The vendor's Sekoia config.yml: its endpoints and proxies are checked too.
    #[arg(long, value_name = "FILE")]
    pub sekoia_config: Option<PathBuf>,
    /// Try to reach the internet: resolve public names through the configured DNS servers,
    /// connect to TCP 443 of public addresses, query public NTP servers (targets: `egress`
    /// in perimeter.yml, or the built-in list in docs/config.md). Each must fail.
    #[arg(long)]
    pub probe_internet: bool,
    /// An answer from the internet fails instead of warning.
    #[arg(long)]
    pub strict_airgap: bool,
    /// Deadline of each step, e.g. `2s`; overrides the configuration (and `egress.deadline`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Validate the configuration and list the checks and targets, without contacting anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the template (default: standard output). An existing file is never overwritten.
    #[arg(value_name = "FILE")]
    pub path: Option<PathBuf>,
    /// Print the JSON Schema of perimeter.yml instead of the template.
    #[arg(long)]
    pub schema: bool,
}

/// Which role this host plays for `flows` (and `check --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlowRole {
    /// The host that runs the installer.
    Orchestration,
    /// A Kubernetes node (manager or worker).
    Node,
    /// The load balancer (its flows to the workers, straight to their responders).
    Lb,
    /// A log source, forwarder or user outside the cluster (tests the load balancer too).
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListenRole {
    /// Every port a node receives on (Kubernetes, overlay, metrics, the load balancer's backend ports).
    Node,
    /// Only the load balancer's backend ports (80, 443, 10514, 11514).
    LbBackend,
}

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// Which flows to test: those whose source is this role.
    #[arg(long, value_enum, required_unless_present = "profiles_markdown")]
    pub role: Option<FlowRole>,
    /// Flow profile (default: perimeter.yml `flows.profile`, else the vendor config's version, else sekoia-1.0.0).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Print the built-in profiles as Markdown tables (docs/flows.md) and exit.
    #[arg(long, exclusive = true)]
    pub profiles_markdown: bool,
    /// The perimeter description with its `flows:` section.
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The vendor's Sekoia config.yml: the inventory and release version.
    #[arg(long, value_name = "FILE")]
    pub sekoia_config: Option<PathBuf>,
    /// PEM bundle of the perimeter's CA (for the load balancer's TLS checks).
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Deadline of each step and each flow, e.g. `2s`; overrides the configuration.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// List the flows and hosts without contacting anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Which ports to answer on.
    #[arg(long, value_enum)]
    pub role: ListenRole,
    #[command(flatten)]
    pub profile: ProfileSource,
    /// Address to bind.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    pub bind: std::net::IpAddr,
    /// Stop after this long (Ctrl-C or SIGTERM stop it earlier).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub deadline: std::time::Duration,
    /// The name put in answers (default: this host's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Shift the clock this responder reports, e.g. `5s` or `-2s` (to test skew detection).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_signed_duration, default_value = "0s")]
    pub clock_offset: i128,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Where `listen` and `host` take their flow profile from: the flag, else
/// the configuration (optional, read only for its profile), else the
/// default.
#[derive(Debug, Args)]
pub struct ProfileSource {
    /// Flow profile (default as for `flows`).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The perimeter description (only its `flows.profile` is used).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The vendor's Sekoia config.yml (only its version is used).
    #[arg(long, value_name = "FILE")]
    pub sekoia_config: Option<PathBuf>,
}

/// Which role a host plays for `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostRole {
    /// A Kubernetes node (manager or worker): packages, and every port `listen --role node` binds.
    Node,
    /// The load balancer: the UI and intake ports.
    Lb,
    /// The host that runs the installer (nothing is checked yet beyond the report's context).
    Orchestration,
}

#[derive(Debug, Args)]
pub struct HostArgs {
    /// The role of this host in the cluster.
    #[arg(long, value_enum)]
    pub role: HostRole,
    #[command(flatten)]
    pub profile: ProfileSource,
    /// dpkg's database of installed packages.
    #[arg(long, value_name = "FILE", default_value = "/var/lib/dpkg/status")]
    pub dpkg_status: PathBuf,
    /// List the checks without making them.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The vendor's Sekoia config.yml: the hosts (utils.ansible.inventory, global.host), the SSH user and key (utils.ansible.user, utils.ansible.ssh-key), the release version.
    #[arg(long, value_name = "FILE")]
    pub sekoia_config: Option<PathBuf>,
    /// The perimeter description: copied to every host (its `flows:` names the hosts; its services are probed from every node).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// An Ansible inventory (INI or YAML, groups managers, workers, load_balancer, optionally clients and orchestration): the hosts, and how to reach them.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Flow profile (default as for `flows`).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The release archive to verify on this machine, in the same report.
    #[arg(long, value_name = "ARCHIVE")]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub archive: ArchiveArgs,
    /// The responders stop at the latest after this long, even if Ansible dies.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub listen_deadline: std::time::Duration,
    /// Print the hosts, their roles and what runs where, without connecting to anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// `5s`, `-2s`, `250ms`: nanoseconds, signed.
pub fn parse_signed_duration(s: &str) -> Result<i128, String> {
    let (neg, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.trim() == "0" || rest.trim() == "0s" {
        return Ok(0);
    }
    let d = crate::config::file::parse_duration(rest)?.as_nanos() as i128;
    Ok(if neg { -d } else { d })
}

/// `2s`, `500ms`, `1m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::config::file::parse_duration(s)
}

#[derive(Debug, Subcommand)]
pub enum SigstoreCommand {
    /// Verify a Sigstore bundle over a file or a sha256:DIGEST, fully offline (Sigstore
    /// conformance CLI protocol). Exit 0 verified, 1 rejected (one reason line), 2 bad input.
    VerifyBundle(VerifyBundleArgs),
}

#[derive(Debug, Args)]
pub struct VerifyBundleArgs {
    /// The Sigstore bundle (`*.sigstore.json`, v0.1, v0.2 or v0.3).
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// The signing certificate's expected identity (its SAN: email or URI), exactly.
    #[arg(
        long,
        value_name = "ID",
        requires = "certificate_oidc_issuer",
        required_unless_present_any = ["key", "certificate_identity_regexp"],
        conflicts_with_all = ["key", "certificate_identity_regexp"]
    )]
    pub certificate_identity: Option<String>,
    /// The signing certificate's identity as a regular expression over the whole SAN.
    #[arg(
        long,
        value_name = "REGEX",
        requires = "certificate_oidc_issuer",
        conflicts_with = "key"
    )]
    pub certificate_identity_regexp: Option<String>,
    /// The signing certificate's expected OIDC issuer, exactly.
    #[arg(long, value_name = "URL", conflicts_with = "key")]
    pub certificate_oidc_issuer: Option<String>,
    /// Verify with this PEM public key (a managed-key bundle) instead of a certificate identity.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The trusted_root.json to verify against (Fulcio CAs, log keys, CT logs, timestamp
    /// authorities). Default: the Sigstore public-good trusted root embedded in this build.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Use the Sigstore staging trusted root embedded in this build (no --trusted-root).
    #[arg(long, conflicts_with = "trusted_root")]
    pub staging: bool,
    /// The signed file, or its digest as `sha256:HEX`.
    #[arg(value_name = "FILE_OR_DIGEST")]
    pub artifact: String,
}

/// Who must have signed the Sigstore bundle beside the archive
/// (`PATH.sigstore.json`), and against which trusted root.
#[derive(Debug, Clone, Args)]
pub struct SigstoreArgs {
    /// Sigstore: the signing certificate's expected identity (SAN), exactly; checks
    /// PATH.sigstore.json offline. Needs --certificate-oidc-issuer.
    #[arg(
        long,
        value_name = "ID",
        requires = "certificate_oidc_issuer",
        conflicts_with_all = ["sigstore_key", "certificate_identity_regexp"]
    )]
    pub certificate_identity: Option<String>,
    /// Sigstore: the signing certificate's identity as a regular expression over the whole SAN.
    #[arg(
        long,
        value_name = "REGEX",
        requires = "certificate_oidc_issuer",
        conflicts_with = "sigstore_key"
    )]
    pub certificate_identity_regexp: Option<String>,
    /// Sigstore: the signing certificate's expected OIDC issuer, exactly.
    #[arg(long, value_name = "URL", conflicts_with = "sigstore_key")]
    pub certificate_oidc_issuer: Option<String>,
    /// Sigstore: verify PATH.sigstore.json with this PEM public key (a managed-key bundle).
    #[arg(long, value_name = "FILE")]
    pub sigstore_key: Option<PathBuf>,
    /// Sigstore: the trusted_root.json to verify against (default: the public-good root
    /// embedded in this build).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Fail for every image of the release without a signature that verifies with the
    /// Sigstore signer above (cosign v3 referrers or cosign .sig tags); without it, a warning.
    #[arg(long)]
    pub require_signed_images: bool,
    /// Fail for every image without a verified SBOM attestation (SPDX or CycloneDX).
    #[arg(long)]
    pub require_sbom: bool,
    /// Fail for every image without a verified SLSA provenance attestation.
    #[arg(long)]
    pub require_provenance: bool,
}

impl SigstoreArgs {
    pub fn options(
        &self,
    ) -> Result<crate::bundle::signing::SigstoreOptions, crate::error::InputError> {
        let signer = signer_policy(
            self.sigstore_key.as_ref(),
            self.certificate_identity.as_ref(),
            self.certificate_identity_regexp.as_ref(),
            self.certificate_oidc_issuer.as_ref(),
        )?;
        Ok(crate::bundle::signing::SigstoreOptions {
            signer,
            trusted_root: self.trusted_root.clone(),
            images: crate::bundle::imagesig::ImagePolicy {
                require_signed: self.require_signed_images,
                require_sbom: self.require_sbom,
                require_provenance: self.require_provenance,
            },
        })
    }
}

/// The signer from the Sigstore flags; clap enforces the pairs and
/// exclusions, this names what is still missing.
pub fn signer_policy(
    key: Option<&PathBuf>,
    identity: Option<&String>,
    identity_regexp: Option<&String>,
    issuer: Option<&String>,
) -> Result<Option<crate::sigstore::SignerPolicy>, crate::error::InputError> {
    use crate::sigstore::SignerPolicy;
    Ok(match (key, identity, identity_regexp, issuer) {
        (Some(k), _, _, _) => Some(SignerPolicy::Key(k.clone())),
        (None, Some(identity), _, Some(issuer)) => Some(SignerPolicy::Identity {
            identity: identity.clone(),
            issuer: issuer.clone(),
        }),
        (None, None, Some(pattern), Some(issuer)) => Some(SignerPolicy::IdentityRegexp {
            pattern: pattern.clone(),
            issuer: issuer.clone(),
        }),
        (None, None, None, Some(_)) => {
            return Err(crate::error::InputError::Usage(
                "--certificate-oidc-issuer needs --certificate-identity or --certificate-identity-regexp".into(),
            ))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_units_in_any_case() {
        for (s, n) in [
            ("512", 512),
            ("4MiB", 4 << 20),
            ("4mib", 4 << 20),
            ("4MIB", 4 << 20),
            ("4 MiB", 4 << 20),
            ("1gib", 1 << 30),
            ("1G", 1 << 30),
            ("10MB", 10_000_000),
            ("10mb", 10_000_000),
            ("2kB", 2_000),
            ("2KiB", 2048),
            ("1TiB", 1 << 40),
        ] {
            assert_eq!(parse_size(s), Ok(n), "{s}");
        }
        for bad in ["", "MiB", "4 parsecs", "-1MiB", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    /// `check --bundle` takes exactly the archive flags of `bundle`.
    #[test]
    fn check_takes_every_flag_of_bundle() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let flags = |name: &str| -> std::collections::BTreeSet<String> {
            cli.find_subcommand(name)
                .unwrap()
                .get_arguments()
                .filter_map(|a| a.get_long().map(String::from))
                .collect()
        };
        let (bundle, check) = (flags("bundle"), flags("check"));
        let missing: Vec<_> = bundle.difference(&check).collect();
        assert!(missing.is_empty(), "check lacks {missing:?}");
        for f in [
            "sha256",
            "no-content",
            "deep",
            "cosign-key",
            "deny-external",
            "max-depth",
        ] {
            assert!(check.contains(f), "{f}");
        }
    }

    #[test]
    fn outputs_with_and_without_a_format() {
        assert_eq!(
            parse_output("json=r.json").unwrap(),
            OutputSpec {
                format: Some(Format::Json),
                path: "r.json".into()
            }
        );
        assert_eq!(parse_output("a=b.json").unwrap().format, None);
        assert!(parse_output("junit=").is_err());
    }
}
