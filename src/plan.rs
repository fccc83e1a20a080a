//! The command line becomes one validated [`Plan`] before any I/O of the
//! run: [`Plan::from_cli`] reads and checks the configuration (perimeter.yml
//! and the vendor's config.yml, secrets resolved, the CA bundle loaded
//! once), the archive options (checksum source, keys, limits), the flow
//! profile (resolved once), the user's severity policy and the outputs
//! (refused when one names an input). Everything it rejects is an
//! [`InputError`] (exit 2) before an archive byte is read, a server
//! contacted or a report file created.
//!
//! What a run will do is data here: the probes are the
//! [`crate::probe::ProbeSpec`]s of the plan's [`Selection`], and
//! [`RunPlan::describe`] prints the same list `--dry-run` promises.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::bundle::checksum::ChecksumSource;
use crate::bundle::BundleOptions;
use crate::cli::{self, Cli, Command, FailOn, FlowRole, ManifestCommand, ReportArgs};
use crate::config::{LoadOptions, Perimeter};
use crate::error::InputError;
use crate::finding::{Policy, Status};
use crate::output::Input;
use crate::probe::flows::SourceRole;
use crate::probe::Selection;
use crate::profiles::Profile;
use crate::report::Format;

/// Effective settings, by flag name, for a report's `policy.settings`.
pub type Settings = BTreeMap<String, serde_json::Value>;

/// What one invocation will do, validated.
pub enum Plan {
    /// A run that ends in a report: `bundle`, `services`, `egress`,
    /// `flows`, `check`.
    Run(Box<RunPlan>),
    /// `listen`: answer flow tests until a deadline or a signal.
    Listen(Box<ListenPlan>),
    /// `host`: this host's own checks as a host of the cluster.
    Host(Box<HostPlan>),
    /// `merge`: hosts' JSON reports into one report of the cluster.
    Merge(Box<MergePlan>),
    /// `cluster`: every host through Ansible, one merged report.
    Cluster(Box<ClusterPlan>),
    /// `manifest create`.
    Manifest(ManifestPlan),
    /// `sigstore verify-bundle` (the Sigstore conformance CLI protocol).
    VerifyBundle(cli::VerifyBundleArgs),
    /// Text for standard output (`init`, `explain`, the profiles table).
    Print(String),
    /// `init PATH`: a new file, never an existing one.
    WriteNew { path: PathBuf, text: String },
    /// `sample DIR`.
    Sample(cli::SampleArgs),
}

/// A run that ends in a report.
pub struct RunPlan {
    pub command: &'static str,
    /// The archive or folder to verify.
    pub bundle: Option<BundleOptions>,
    /// The perimeter, for the probe commands.
    pub perimeter: Option<Perimeter>,
    /// The probes to start (none for `bundle`).
    pub select: Selection,
    pub policy: Policy,
    pub output: OutputPlan,
    /// What `--output` may never name, also the report's evidence.
    pub inputs: Vec<Input>,
    /// The settings the verdict depends on, for `policy.settings`.
    pub settings: Settings,
    /// `--dry-run`: print [`RunPlan::describe`] and stop.
    pub dry_run: bool,
}

/// Where and how the report goes.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    /// The format for standard output (and for plain `--output FILE`).
    pub format: Format,
    /// `--output [FORMAT=]FILE`, in order.
    pub files: Vec<(Format, PathBuf)>,
    /// Whether standard output gets a report (not when a plain `--output
    /// FILE` took it).
    pub stdout: bool,
    pub color: cli::ColorChoice,
    pub verbosity: crate::report::human::Verbosity,
    /// Progress on a terminal's standard error (`--no-progress` turns it off).
    pub progress: bool,
}

/// `listen`.
pub struct ListenPlan {
    pub profile: Profile,
    pub options: crate::probe::listen::ListenOptions,
    pub policy: Policy,
    pub output: OutputPlan,
    pub inputs: Vec<Input>,
}

/// `host`.
pub struct HostPlan {
    pub profile: Profile,
    pub role: crate::probe::host::HostRole,
    pub dpkg_status: PathBuf,
    pub policy: Policy,
    pub output: OutputPlan,
    pub dry_run: bool,
}

/// `merge`.
pub struct MergePlan {
    pub reports: Vec<crate::merge::ReportFile>,
    pub policy: Policy,
    pub output: OutputPlan,
}

/// `cluster`.
pub struct ClusterPlan {
    pub cluster: crate::cluster::Plan,
    /// The release archive, verified on this machine into the same report.
    pub bundle: Option<BundleOptions>,
    pub policy: Policy,
    pub output: OutputPlan,
    pub dry_run: bool,
}

/// `manifest create`.
pub struct ManifestPlan {
    pub bundle: BundleOptions,
    pub root: String,
    pub product: String,
    pub release_version: String,
    /// Checked against the inputs; created when the run starts.
    pub output: Option<PathBuf>,
}

impl Plan {
    /// Every check that needs no network, before any I/O of the run.
    pub fn from_cli(cli: Cli) -> Result<Plan, InputError> {
        match cli.command {
            Command::Bundle(a) => {
                let opts = a.archive.options(a.path)?;
                let inputs = bundle_inputs(&opts);
                RunPlan::plan(
                    "bundle",
                    Some(opts),
                    None,
                    None,
                    &a.report,
                    inputs,
                    a.dry_run,
                )
            }
            Command::Services(a) => {
                let perimeter = crate::config::load(&load_options(&a))?;
                RunPlan::probes(
                    "services",
                    perimeter,
                    Selection::SERVICES,
                    &a.report,
                    a.dry_run,
                )
            }
            Command::Egress(a) => {
                let perimeter = crate::config::load(&LoadOptions {
                    perimeter: a.config,
                    sekoia: a.sekoia_config,
                    timeout: a.timeout,
                    strict_airgap: a.strict_airgap,
                    egress: true,
                    probe_internet: a.probe_internet,
                    no_services: true,
                    ..Default::default()
                })?;
                // `run_services` is off: the selected probes are the egress checks.
                RunPlan::probes(
                    "egress",
                    perimeter,
                    Selection::SERVICES,
                    &a.report,
                    a.dry_run,
                )
            }
            Command::Flows(a) => {
                if a.profiles_markdown {
                    return Ok(Plan::Print(crate::profiles::markdown()));
                }
                let mut perimeter = crate::config::load(&LoadOptions {
                    perimeter: a.config,
                    sekoia: a.sekoia_config,
                    ca_bundle: a.ca_bundle,
                    timeout: a.timeout,
                    ..Default::default()
                })?;
                // That no service is configured is no news to a flow test.
                perimeter
                    .findings
                    .retain(|f| f.code != crate::finding::Code::ConfigNothingToCheck);
                let profile = choose_profile(&mut perimeter, a.profile)?;
                if perimeter.flows.is_none() {
                    return Err(InputError::Config(
                        "no cluster hosts: add a `flows:` section to perimeter.yml (load_balancer, managers, workers) or give --sekoia-config with its inventory; see docs/flows.md".into(),
                    ));
                }
                let role = source_role(a.role.unwrap_or(FlowRole::Orchestration));
                let select = Selection {
                    services: false,
                    flows: Some((role, profile)),
                };
                RunPlan::probes("flows", perimeter, select, &a.report, a.dry_run)
            }
            Command::Check(a) => {
                let s = a.services;
                // The static egress checks are cheap and always part of `check`.
                let mut perimeter = crate::config::load(&LoadOptions {
                    egress: true,
                    probe_internet: a.probe_internet,
                    ..load_options(&s)
                })?;
                // Flows join the run when the configuration names the cluster's hosts.
                let flows = match perimeter.flows {
                    Some(_) => Some((source_role(a.role), choose_profile(&mut perimeter, None)?)),
                    None => None,
                };
                let bundle = match a.bundle {
                    Some(path) => Some(a.archive.options(path)?),
                    None => None,
                };
                let mut inputs = bundle.as_ref().map(bundle_inputs).unwrap_or_default();
                inputs.extend(config_inputs(&perimeter));
                let select = Selection {
                    services: true,
                    flows,
                };
                RunPlan::plan(
                    "check",
                    bundle,
                    Some(perimeter),
                    Some(select),
                    &s.report,
                    inputs,
                    s.dry_run,
                )
            }
            Command::Listen(a) => ListenPlan::new(a).map(|p| Plan::Listen(Box::new(p))),
            Command::Host(a) => {
                use crate::probe::host::HostRole as HR;
                // The configuration is optional here, as for `listen`: it
                // only names the profile (and the severity overrides).
                let (perimeter, profile, inputs) = profile_only(a.profile)?;
                Ok(Plan::Host(Box::new(HostPlan {
                    profile,
                    role: match a.role {
                        cli::HostRole::Node => HR::Node,
                        cli::HostRole::Lb => HR::Lb,
                        cli::HostRole::Orchestration => HR::Orchestration,
                    },
                    dpkg_status: a.dpkg_status,
                    output: OutputPlan::new(&a.report, &inputs)?,
                    policy: policy(&a.report, perimeter.as_ref())?,
                    dry_run: a.dry_run,
                })))
            }
            Command::Merge(a) => {
                let inputs: Vec<Input> = a
                    .reports
                    .iter()
                    .map(|r| Input::new("report", &r.path))
                    .collect();
                Ok(Plan::Merge(Box::new(MergePlan {
                    output: OutputPlan::new(&a.report, &inputs)?,
                    policy: policy(&a.report, None)?,
                    reports: a.reports,
                })))
            }
            Command::Cluster(a) => {
                let opts = crate::cluster::ClusterOptions {
                    perimeter: a.config,
                    sekoia: a.sekoia_config,
                    inventory: a.inventory,
                    profile: a.profile,
                    binary: std::env::current_exe().map_err(|e| {
                        InputError::Usage(format!("cannot find this program's own file: {e}"))
                    })?,
                    listen_deadline: a.listen_deadline,
                };
                let cluster = crate::cluster::plan(&opts)?;
                let bundle = match a.bundle {
                    Some(path) => Some(a.archive.options(path)?),
                    None => None,
                };
                let mut inputs = cluster
                    .config
                    .as_ref()
                    .map(config_inputs)
                    .unwrap_or_default();
                inputs.extend(bundle.as_ref().map(bundle_inputs).unwrap_or_default());
                Ok(Plan::Cluster(Box::new(ClusterPlan {
                    output: OutputPlan::new(&a.report, &inputs)?,
                    policy: policy(&a.report, cluster.config.as_ref())?,
                    cluster,
                    bundle,
                    dry_run: a.dry_run,
                })))
            }
            Command::Init(a) => {
                let text = if a.schema {
                    crate::config::file::json_schema()
                } else {
                    crate::config::file::TEMPLATE.to_string()
                };
                Ok(match a.path {
                    None => Plan::Print(text),
                    Some(path) => Plan::WriteNew { path, text },
                })
            }
            Command::Explain(a) => Ok(Plan::Print(if a.markdown {
                crate::codes::markdown()
            } else if a.list {
                crate::codes::ALL
                    .iter()
                    .map(|c| format!("{:<36} {}\n", c.id, c.default_status))
                    .collect()
            } else {
                let id = a.code.unwrap_or_default();
                let code = crate::finding::parse_code(&id).map_err(InputError::Usage)?;
                crate::codes::explain_text(code)
            })),
            Command::Manifest(ManifestCommand::Create(a)) => {
                let bundle = BundleOptions {
                    path: a.path.clone(),
                    checksum: ChecksumSource::Auto,
                    limits: crate::bundle::Limits::default(),
                    signatures: Default::default(),
                };
                // The manifest never replaces an input.
                if let Some(p) = &a.output {
                    crate::output::refuse_inputs(&[p.as_path()], &bundle_inputs(&bundle))?;
                }
                let product = a.product.unwrap_or_else(|| {
                    let name = a
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default();
                    name.split(".tar").next().unwrap_or(&name).to_string()
                });
                Ok(Plan::Manifest(ManifestPlan {
                    bundle,
                    root: a.root,
                    product,
                    release_version: a.release_version,
                    output: a.output,
                }))
            }
            Command::Sigstore(cli::SigstoreCommand::VerifyBundle(a)) => Ok(Plan::VerifyBundle(a)),
            Command::Sample(a) => Ok(Plan::Sample(a)),
        }
    }

    /// Whether SIGINT and SIGTERM must remove temporary report files and
    /// scratch folders (`listen` handles both its own way).
    pub fn writes_temporary_files(&self) -> bool {
        matches!(
            self,
            Plan::Run(_) | Plan::Manifest(_) | Plan::Merge(_) | Plan::Cluster(_)
        )
    }
}

impl RunPlan {
    fn probes(
        command: &'static str,
        perimeter: Perimeter,
        select: Selection,
        report: &ReportArgs,
        dry_run: bool,
    ) -> Result<Plan, InputError> {
        let inputs = config_inputs(&perimeter);
        RunPlan::plan(
            command,
            None,
            Some(perimeter),
            Some(select),
            report,
            inputs,
            dry_run,
        )
    }

    fn plan(
        command: &'static str,
        bundle: Option<BundleOptions>,
        perimeter: Option<Perimeter>,
        select: Option<Selection>,
        report: &ReportArgs,
        inputs: Vec<Input>,
        dry_run: bool,
    ) -> Result<Plan, InputError> {
        let output = OutputPlan::new(report, &inputs)?;
        let policy = policy(report, perimeter.as_ref())?;
        let mut settings = perimeter.as_ref().map(probe_settings).unwrap_or_default();
        if let Some(o) = &bundle {
            settings.extend(bundle_settings(o));
        }
        Ok(Plan::Run(Box::new(RunPlan {
            command,
            bundle,
            perimeter,
            select: select.unwrap_or(Selection {
                services: false,
                flows: None,
            }),
            policy,
            output,
            inputs,
            settings,
            dry_run,
        })))
    }

    /// The plan in words, one line per check, for `--dry-run`: no
    /// connection, no read of the archive (its keys and checksum are loaded
    /// and checked), no write.
    pub fn describe(&self) -> Result<Vec<String>, InputError> {
        let mut lines = match (&self.bundle, self.command) {
            (Some(o), _) => crate::bundle::describe(o)?,
            (None, "check") => vec!["bundle: none (no --bundle): no archive is verified".into()],
            (None, _) => Vec::new(),
        };
        if let Some(p) = &self.perimeter {
            if let (Some(o), Some(r)) = (&self.bundle, &p.registry) {
                if o.limits.max_depth > 0 {
                    lines.push(format!(
                        "bundle images: each image the archive holds is looked up in {}",
                        r.url
                    ));
                }
            }
            lines.extend(crate::probe::describe(p, &self.select));
        }
        Ok(lines)
    }
}

impl OutputPlan {
    /// The `--output` files, checked against the run's inputs (a usage
    /// error when one names an input, or two name the same file); nothing
    /// is created.
    fn new(r: &ReportArgs, inputs: &[Input]) -> Result<OutputPlan, InputError> {
        if r.output.iter().filter(|o| o.format.is_none()).count() > 1 {
            return Err(InputError::Usage(
                "--output: several plain FILEs; write the others as FORMAT=FILE (json=r.json)"
                    .into(),
            ));
        }
        let paths: Vec<&std::path::Path> = r.output.iter().map(|o| o.path.as_path()).collect();
        crate::output::refuse_inputs(&paths, inputs)?;
        use crate::report::human::Verbosity;
        Ok(OutputPlan {
            format: r.format,
            files: r
                .output
                .iter()
                .map(|o| (o.format.unwrap_or(r.format), o.path.clone()))
                .collect(),
            stdout: !r.output.iter().any(|o| o.format.is_none()),
            color: r.color,
            verbosity: match (r.quiet, r.verbose) {
                (true, _) => Verbosity::Quiet,
                (_, true) => Verbosity::Verbose,
                _ => Verbosity::Normal,
            },
            progress: !r.no_progress,
        })
    }
}

impl ListenPlan {
    fn new(a: cli::ListenArgs) -> Result<ListenPlan, InputError> {
        use crate::probe::listen::{ListenOptions, ListenRole as LR};
        // The configuration is optional here: it only names the profile.
        let (perimeter, profile, inputs) = profile_only(a.profile)?;
        let io = perimeter
            .as_ref()
            .map_or(Duration::from_secs(3), |p| p.deadlines.io);
        let host = a.name.unwrap_or_else(crate::report::hostname);
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(InputError::Usage(format!(
                "--name: `{host}` must be one word"
            )));
        }
        Ok(ListenPlan {
            profile,
            options: ListenOptions {
                role: match a.role {
                    cli::ListenRole::Node => LR::Node,
                    cli::ListenRole::LbBackend => LR::LbBackend,
                },
                bind: a.bind,
                host,
                deadline: a.deadline,
                clock_offset_ns: a.clock_offset,
                io,
            },
            // The configuration only names the profile here: its
            // `severity:` is for the checks, not for this host's ports.
            policy: policy(&a.report, None)?,
            output: OutputPlan::new(&a.report, &inputs)?,
            inputs,
        })
    }
}

/// For `listen` and `host`, whose configuration is optional and only names
/// the profile: the perimeter when a file is given, the profile (the flag,
/// else the configuration's, else the default), and the inputs.
fn profile_only(
    src: cli::ProfileSource,
) -> Result<(Option<Perimeter>, Profile, Vec<Input>), InputError> {
    let cli::ProfileSource {
        profile: flag,
        config,
        sekoia_config: sekoia,
    } = src;
    if config.is_none() && sekoia.is_none() {
        let name = flag.unwrap_or_else(|| crate::profiles::DEFAULT.to_string());
        let profile = crate::profiles::get(&name)
            .map_err(|m| InputError::Usage(format!("--profile: {m}")))?;
        return Ok((None, profile, Vec::new()));
    }
    let mut perimeter = crate::config::load(&LoadOptions {
        perimeter: config,
        sekoia,
        ..Default::default()
    })?;
    let inputs = config_inputs(&perimeter);
    let profile = choose_profile(&mut perimeter, flag)?;
    Ok((Some(perimeter), profile, inputs))
}

/// The user's policy: perimeter.yml `severity:` first, then `--warn`,
/// `--fail`, `--allow` (one code in two of them is a usage error), then
/// `--fail-on`.
fn policy(r: &ReportArgs, plan: Option<&Perimeter>) -> Result<Policy, InputError> {
    let mut overrides = plan.map(|p| p.severity.clone()).unwrap_or_default();
    let mut from_cli = BTreeMap::new();
    for (codes, status, flag) in [
        (&r.warn_codes, Status::Warn, "--warn"),
        (&r.fail_codes, Status::Fail, "--fail"),
        (&r.allow_codes, Status::Pass, "--allow"),
    ] {
        for c in codes {
            if let Some((_, other)) = from_cli.insert(*c, (status, flag)) {
                if other != flag {
                    return Err(InputError::Usage(format!(
                        "{c} is given to both {other} and {flag}; keep one"
                    )));
                }
            }
        }
    }
    overrides.extend(from_cli.into_iter().map(|(c, (s, _))| (c, s)));
    Ok(Policy {
        fail_on_warn: r.fail_on == FailOn::Warn,
        overrides,
    })
}

/// What `--output` must never name, for an archive pass: the archive or
/// folder, its checksum, signatures and keys.
pub fn bundle_inputs(o: &BundleOptions) -> Vec<Input> {
    let beside = |ext: &str| {
        let mut p = o.path.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let mut v = vec![Input::new(
        if o.path.is_dir() {
            "folder being verified"
        } else {
            "archive"
        },
        &o.path,
    )];
    match &o.checksum {
        ChecksumSource::File(f) => v.push(Input::new("checksum file", f)),
        ChecksumSource::Auto => {
            for f in crate::bundle::checksum::beside(&o.path) {
                v.push(Input::new("checksum file", f));
            }
        }
        ChecksumSource::Hex(_) => {}
    }
    v.push(Input::new("signature", beside(".minisig")));
    v.push(Input::new("signature", beside(".sig")));
    if let Some(k) = &o.signatures.minisign_key {
        if std::path::Path::new(k).exists() {
            v.push(Input::new("--pubkey file", k));
        }
    }
    if let Some(k) = &o.signatures.cosign_key {
        v.push(Input::new("--cosign-key file", k));
    }
    v.push(Input::new("Sigstore bundle", beside(".sigstore.json")));
    if let Some(crate::sigstore::SignerPolicy::Key(k)) = &o.signatures.sigstore.signer {
        v.push(Input::new("--sigstore-key file", k));
    }
    if let Some(r) = &o.signatures.sigstore.trusted_root {
        v.push(Input::new("--trusted-root file", r));
    }
    v
}

/// The configuration files a plan was read from, and its CA bundle.
fn config_inputs(plan: &Perimeter) -> Vec<Input> {
    let mut v: Vec<Input> = plan
        .sources
        .iter()
        .map(|p| Input::new("configuration", p))
        .collect();
    if let Some(ca) = &plan.ca_bundle {
        v.push(Input::new("CA bundle", ca));
    }
    v
}

/// The flags `services` and `check` share, as configuration-loading options.
fn load_options(a: &cli::ServicesArgs) -> LoadOptions {
    LoadOptions {
        perimeter: a.config.clone(),
        sekoia: a.sekoia_config.clone(),
        ca_bundle: a.ca_bundle.clone(),
        timeout: a.timeout,
        system_roots: a.system_roots,
        strict_airgap: a.strict_airgap,
        send_test_mail: a.send_test_mail,
        write_probe: a.write_probe,
        s3_benchmark: a.s3_benchmark,
        egress: false,
        probe_internet: false,
        no_services: false,
    }
}

fn source_role(r: FlowRole) -> SourceRole {
    match r {
        FlowRole::Orchestration => SourceRole::Orchestration,
        FlowRole::Node => SourceRole::Node,
        FlowRole::Lb => SourceRole::Lb,
        FlowRole::Client => SourceRole::Client,
    }
}

/// The profile, resolved once: the flag, else what the configuration says
/// (its section, else the vendor's version), else the default.
fn choose_profile(plan: &mut Perimeter, flag: Option<String>) -> Result<Profile, InputError> {
    if let Some(p) = flag {
        let fp = plan.flows_mut();
        fp.profile = Some(p);
        fp.profile_source = "--profile".into();
    }
    let name = plan
        .flows
        .as_ref()
        .map(|f| f.profile_name().to_string())
        .unwrap_or_else(|| crate::profiles::DEFAULT.to_string());
    crate::profiles::get(&name).map_err(|m| InputError::Usage(format!("--profile: {m}")))
}

/// The settings an archive pass's verdict depends on, defaults included,
/// for the report's `policy.settings`.
fn bundle_settings(o: &BundleOptions) -> Settings {
    let l = &o.limits;
    let mut s = Settings::new();
    let mut set = |k: &str, v: serde_json::Value| {
        s.insert(k.to_string(), v);
    };
    set(
        "checksum",
        match &o.checksum {
            ChecksumSource::File(f) => format!("--checksum {}", f.display()),
            ChecksumSource::Hex(_) => "--sha256".into(),
            ChecksumSource::Auto => {
                "beside the archive (ARCHIVE.sha256, or a SHA256SUMS that names it)".into()
            }
        }
        .into(),
    );
    set("content", (l.max_depth > 0).into());
    set("deep", l.deep.into());
    set("max_depth", l.max_depth.into());
    set("max_entries", l.max_entries.into());
    set("max_nested_bytes", l.max_nested_bytes.into());
    set("max_nested_entries", l.max_nested_entries.into());
    set("max_expansion_ratio", l.max_expansion_ratio.into());
    set("max_manifest_size", l.max_manifest_size.into());
    set("pubkey", o.signatures.minisign_key.is_some().into());
    set("cosign_key", o.signatures.cosign_key.is_some().into());
    set("allow_host", l.perimeter.hosts.clone().into());
    set("allow_domain", l.perimeter.domains.clone().into());
    set("deny_external", l.perimeter.deny_external.into());
    s
}

/// The settings a probe run's verdict depends on, defaults included.
fn probe_settings(plan: &Perimeter) -> Settings {
    let ms = |d: Duration| serde_json::Value::from(d.as_millis() as u64);
    let mut s = Settings::new();
    let mut set = |k: &str, v: serde_json::Value| {
        s.insert(k.to_string(), v);
    };
    set(
        "allowed_networks",
        plan.allowed_networks
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .into(),
    );
    set("connect_timeout_ms", ms(plan.deadlines.connect));
    set("handshake_timeout_ms", ms(plan.deadlines.handshake));
    set("io_timeout_ms", ms(plan.deadlines.io));
    set("system_roots", plan.system_roots.into());
    set("strict_airgap", plan.strict_airgap.into());
    set("send_test_mail", plan.send_test_mail.into());
    set("write_probe", plan.write_probe.into());
    set("s3_benchmark", plan.s3_benchmark.into());
    set("probe_internet", plan.egress.probe_internet.into());
    s
}
