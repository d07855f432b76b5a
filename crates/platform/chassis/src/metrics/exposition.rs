//! One service's view of the process's exposition text: its samples, and the `# HELP` and
//! `# TYPE` lines of the families it has samples in (a family with none is left out, so the
//! view is as valid for `promtool check metrics` as the whole).

/// The lines of `text` (Prometheus text format) whose `service` label is `service`.
pub fn only_service(text: &str, service: &str) -> String {
    let needle = format!("service=\"{service}\"");
    let mut out = String::with_capacity(text.len() / 4);
    // The comment lines of the family being read, written out before its first kept sample.
    let mut header = String::new();
    let mut header_written = false;
    for line in text.lines() {
        if line.starts_with('#') {
            if header_written || !is_same_family(&header, line) {
                header.clear();
                header_written = false;
            }
            header.push_str(line);
            header.push('\n');
            continue;
        }
        if line.is_empty() || !has_label(line, &needle) {
            continue;
        }
        if !header_written {
            out.push_str(&header);
            header_written = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether `line` (a comment) belongs to the family whose comments are in `header`.
fn is_same_family(header: &str, line: &str) -> bool {
    let family = |comment: &str| comment.split_whitespace().nth(2).map(str::to_owned);
    match header.lines().next() {
        None => true,
        Some(first) => family(first) == family(line),
    }
}

/// Whether the sample `line` has the label `needle` (`name="value"`) among its labels.
fn has_label(line: &str, needle: &str) -> bool {
    let Some(open) = line.find('{') else {
        return false;
    };
    let labels = &line[open..];
    labels.match_indices(needle).any(|(at, _)| {
        let before = labels.as_bytes().get(at.wrapping_sub(1)).copied();
        at > 0 && matches!(before, Some(b'{' | b','))
    })
}

#[cfg(test)]
mod tests {
    use super::only_service;

    #[test]
    fn keeps_one_services_samples_with_their_family_comments() {
        let text = "\
# HELP requests_total Requests.
# TYPE requests_total counter
requests_total{service=\"cart\",route=\"/\"} 3
requests_total{service=\"orders\",route=\"/\"} 4
requests_total{upstream=\"x\",service=\"orders\"} 5

# HELP other_total Other.
# TYPE other_total counter
other_total{service=\"cart\"} 1
other_total{caller_service=\"orders\"} 9
";
        let orders = only_service(text, "orders");
        assert_eq!(
            orders,
            "# HELP requests_total Requests.\n# TYPE requests_total counter\n\
             requests_total{service=\"orders\",route=\"/\"} 4\n\
             requests_total{upstream=\"x\",service=\"orders\"} 5\n"
        );
        assert!(only_service(text, "nobody").is_empty());
    }
}
