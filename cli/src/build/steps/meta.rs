//! The instructions that only change the image config: ENV, LABEL,
//! EXPOSE, VOLUME, USER, CMD, ENTRYPOINT, SHELL, STOPSIGNAL,
//! HEALTHCHECK, MAINTAINER, ONBUILD. Field names and value shapes are
//! Docker's image config.

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value, json};

/// `config` of the image document, made an object if it is not.
pub fn cfg(image: &mut Value) -> &mut Map<String, Value> {
    if !image["config"].is_object() {
        image["config"] = json!({});
    }
    image["config"]
        .as_object_mut()
        .expect("config is an object")
}

/// The image's Env as (key, value) pairs.
pub fn env_pairs(image: &Value) -> Vec<(String, String)> {
    image["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str())
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub fn set_env(image: &mut Value, key: &str, value: &str) {
    let mut env = env_pairs(image);
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(e) => e.1 = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    }
    cfg(image).insert(
        "Env".into(),
        json!(
            env.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        ),
    );
}

fn map_insert(image: &mut Value, field: &str, key: &str, value: Value) {
    let c = cfg(image);
    if !c.get(field).is_some_and(Value::is_object) {
        c.insert(field.into(), json!({}));
    }
    if let Some(m) = c.get_mut(field).and_then(Value::as_object_mut) {
        m.insert(key.to_string(), value);
    }
}

pub fn add_label(image: &mut Value, key: &str, value: &str) {
    map_insert(image, "Labels", key, json!(value));
}

pub fn add_volume(image: &mut Value, path: &str) {
    map_insert(image, "Volumes", path, json!({}));
}

/// `EXPOSE 80`, `80/udp`, `8000-8002/tcp` (a range is every port).
pub fn expose(image: &mut Value, spec: &str) -> Result<()> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("invalid protocol {proto:?} in EXPOSE {spec}");
    }
    let parse = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| anyhow!("invalid port {s:?} in EXPOSE {spec}"))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(ports)?, parse(ports)?),
    };
    if hi < lo {
        bail!("invalid port range in EXPOSE {spec}");
    }
    for p in lo..=hi {
        map_insert(image, "ExposedPorts", &format!("{p}/{proto}"), json!({}));
    }
    Ok(())
}

/// A Go duration ("30s", "1m30s", "500ms", "1h") in nanoseconds.
pub fn go_duration(s: &str) -> Result<i64> {
    let bad = || anyhow!("invalid duration {s:?}");
    if s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    Ok(total as i64)
}

/// HEALTHCHECK: `NONE`, or `[--interval=..] CMD command` (shell or JSON).
pub fn healthcheck(args: &str, flags: &[(String, String)]) -> Result<Value> {
    let t = args.trim();
    if t.eq_ignore_ascii_case("none") {
        if !flags.is_empty() {
            bail!("HEALTHCHECK NONE takes no options");
        }
        return Ok(json!({"Test": ["NONE"]}));
    }
    let (kw, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    if !kw.eq_ignore_ascii_case("cmd") {
        bail!("HEALTHCHECK: unknown type {kw:?}: must be CMD or NONE");
    }
    let rest = rest.trim();
    if rest.is_empty() {
        bail!("HEALTHCHECK CMD requires a command");
    }
    let test: Vec<String> = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
        Err(_) => vec!["CMD-SHELL".into(), rest.to_string()],
    };
    let mut h = json!({"Test": test});
    for (k, v) in flags {
        match k.as_str() {
            "interval" => h["Interval"] = json!(go_duration(v)?),
            "timeout" => h["Timeout"] = json!(go_duration(v)?),
            "start-period" => h["StartPeriod"] = json!(go_duration(v)?),
            "start-interval" => h["StartInterval"] = json!(go_duration(v)?),
            "retries" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| anyhow!("HEALTHCHECK: invalid --retries {v:?}"))?;
                if n < 0 {
                    bail!("HEALTHCHECK: --retries cannot be negative");
                }
                h["Retries"] = json!(n);
            }
            _ => bail!("HEALTHCHECK: unknown flag --{k}"),
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_labels_ports() {
        let mut img = json!({"config": {"Env": ["PATH=/bin"]}});
        set_env(&mut img, "A", "1");
        set_env(&mut img, "PATH", "/usr/bin");
        assert_eq!(img["config"]["Env"], json!(["PATH=/usr/bin", "A=1"]));
        add_label(&mut img, "x", "y");
        expose(&mut img, "8000-8001").unwrap();
        expose(&mut img, "53/UDP").unwrap();
        assert_eq!(
            img["config"]["ExposedPorts"],
            json!({"8000/tcp": {}, "8001/tcp": {}, "53/udp": {}})
        );
        assert!(expose(&mut img, "http").is_err());
        assert!(expose(&mut img, "80/xyz").is_err());
    }

    #[test]
    fn durations_and_healthchecks() {
        assert_eq!(go_duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(go_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(go_duration("500ms").unwrap(), 500_000_000);
        assert!(go_duration("5 s").is_err());
        assert!(go_duration("").is_err());
        let h = healthcheck(
            "CMD wget -q -O- localhost",
            &[
                ("interval".into(), "5s".into()),
                ("retries".into(), "3".into()),
            ],
        )
        .unwrap();
        assert_eq!(h["Test"], json!(["CMD-SHELL", "wget -q -O- localhost"]));
        assert_eq!(h["Interval"], json!(5_000_000_000i64));
        assert_eq!(h["Retries"], json!(3));
        let j = healthcheck("CMD [\"true\"]", &[]).unwrap();
        assert_eq!(j["Test"], json!(["CMD", "true"]));
        assert_eq!(healthcheck("NONE", &[]).unwrap()["Test"], json!(["NONE"]));
        assert!(healthcheck("SOMETIMES x", &[]).is_err());
    }
}
