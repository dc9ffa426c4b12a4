//! Reading samples out of the Prometheus text exposition format.

/// The value of the first sample of `name` whose labels include every `labels` pair.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_str) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| label_str.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            if !all {
                return None;
            }
            match value {
                "+Inf" => Some(f64::INFINITY),
                v => v.parse().ok(),
            }
        })
}

/// The `# TYPE` of a metric.
pub(crate) fn kind<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("# TYPE ")?;
        let (n, k) = rest.split_once(' ')?;
        (n == name).then_some(k.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples() {
        let t = "# TYPE d histogram\nd_bucket{le=\"0.5\"} 1\nd_bucket{le=\"+Inf\"} 3\nc{reason=\"timeout\",x=\"y\"} 2\ng 0\n";
        assert_eq!(sample(t, "d_bucket", &[("le", "+Inf")]), Some(3.0));
        assert_eq!(sample(t, "c", &[("reason", "timeout")]), Some(2.0));
        assert_eq!(sample(t, "c", &[("reason", "drain")]), None);
        assert_eq!(sample(t, "g", &[]), Some(0.0));
        assert_eq!(kind(t, "d"), Some("histogram"));
    }
}
