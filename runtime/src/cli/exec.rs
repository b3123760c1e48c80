//! `exec` flags: a process.json (`-p`), or the container's own process
//! with args, cwd, env, user and tty overridden (as runc does).

use std::path::PathBuf;

use clap::Args;
use oci_spec::runtime::Process;

use crate::container::exec::ExecOptions;
use crate::error::{Context, Error, Result};
use crate::state::Root;

#[derive(Args, Debug)]
pub struct ExecArgs {
    pub id: String,
    /// Command and arguments (unless -p is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Path to a process.json.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short, long)]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability to the exec process.
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The SELinux label of the exec process (refused without SELinux).
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// The AppArmor profile of the exec process (refused without AppArmor).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Exec even into a paused container.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run in a sub-cgroup of the container's: `PATH` or `CTRL[,CTRL]:PATH`
    /// (may be repeated; cgroup v1 here).
    #[arg(long = "cgroup")]
    pub cgroup: Vec<String>,
}

impl ExecArgs {
    pub fn options(&self, root: &Root) -> Result<ExecOptions> {
        let process = match &self.process {
            Some(p) => {
                let data = std::fs::read(p).ctx(|| format!("read process file {}", p.display()))?;
                let bad =
                    |e: serde_json::Error| Error::InvalidProcess(format!("{}: {e}", p.display()));
                let mut v: serde_json::Value = serde_json::from_slice(&data).map_err(bad)?;
                // runc's default for a process.json without a user: root.
                if let Some(o) = v.as_object_mut()
                    && !o.contains_key("user")
                {
                    o.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
                }
                crate::spec::spec_names_to_oci_spec(&mut v);
                let mut proc: Process = serde_json::from_value(v).map_err(bad)?;
                if self.tty {
                    proc.set_terminal(Some(true));
                }
                proc
            }
            None => self.process_from_flags(root)?,
        };
        let mut process = process;
        if let Some(l) = &self.process_label {
            process.set_selinux_label(Some(l.clone()));
        }
        if let Some(a) = &self.apparmor {
            process.set_apparmor_profile(Some(a.clone()));
        }
        crate::security::lsm::check(Some(&process), None)?;
        Ok(ExecOptions {
            id: self.id.clone(),
            process,
            console_socket: self.console_socket.clone(),
            pid_file: self.pid_file.clone(),
            detach: self.detach,
            preserve_fds: self.preserve_fds,
            ignore_paused: self.ignore_paused,
            sub_cgroups: self.cgroup.clone(),
        })
    }

    fn process_from_flags(&self, root: &Root) -> Result<Process> {
        if self.command.is_empty() {
            return Err(Error::InvalidProcess(
                "exec needs a command or -p process.json".into(),
            ));
        }
        let st = root.load(&self.id)?;
        let mut p = st.spec.process().clone().unwrap_or_default();
        p.set_args(Some(self.command.clone()));
        p.set_terminal(Some(self.tty));
        if let Some(cwd) = &self.cwd {
            p.set_cwd(cwd.clone());
        }
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(self.env.iter().cloned());
        p.set_env(Some(env));
        if let Some(u) = &self.user {
            let (uid, gid) = match u.split_once(':') {
                Some((a, b)) => (a, Some(b)),
                None => (u.as_str(), None),
            };
            let bad = || Error::InvalidProcess(format!("--user {u:?} must be uid[:gid]"));
            let mut user = p.user().clone();
            user.set_uid(uid.parse().map_err(|_| bad())?);
            user.set_gid(
                gid.map(|g| g.parse())
                    .transpose()
                    .map_err(|_| bad())?
                    .unwrap_or(0),
            );
            if !self.additional_gids.is_empty() {
                user.set_additional_gids(Some(self.additional_gids.clone()));
            }
            p.set_user(user);
        }
        if self.no_new_privs {
            p.set_no_new_privileges(Some(true));
        }
        if !self.cap.is_empty() {
            let mut caps = p.capabilities().clone().unwrap_or_default();
            let add: Vec<oci_spec::runtime::Capability> = self
                .cap
                .iter()
                .map(|c| {
                    serde_json::from_value(serde_json::Value::String(c.clone()))
                        .map_err(|_| Error::InvalidProcess(format!("unknown capability {c:?}")))
                })
                .collect::<Result<_>>()?;
            let extend = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.extend(add.iter().cloned());
                Some(s)
            };
            caps.set_bounding(extend(caps.bounding()));
            caps.set_effective(extend(caps.effective()));
            caps.set_permitted(extend(caps.permitted()));
            caps.set_inheritable(extend(caps.inheritable()));
            caps.set_ambient(extend(caps.ambient()));
            p.set_capabilities(Some(caps));
        }
        Ok(p)
    }
}
