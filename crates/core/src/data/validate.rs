//! Span-level checks done on receipt: ids must have OTLP's lengths and not be all zero. Bad
//! spans are removed and reported through `partial_success`, the rest of the request goes on.

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

/// What was removed from a request.
#[derive(Debug, Default, PartialEq)]
pub struct Rejected {
    pub spans: u64,
    /// The first problem, for `partial_success.error_message`.
    pub message: String,
}

fn problem(span: &Span) -> Option<&'static str> {
    id_problem(&span.trace_id, &span.span_id, &span.parent_span_id)
}

/// What is wrong with a span's ids, if anything (shared with the wire walk, `super::wire`).
pub fn id_problem(trace_id: &[u8], span_id: &[u8], parent_span_id: &[u8]) -> Option<&'static str> {
    if trace_id.len() != 16 {
        return Some("trace_id must be 16 bytes");
    }
    if trace_id.iter().all(|&b| b == 0) {
        return Some("trace_id must not be all zeros");
    }
    if span_id.len() != 8 {
        return Some("span_id must be 8 bytes");
    }
    if span_id.iter().all(|&b| b == 0) {
        return Some("span_id must not be all zeros");
    }
    if !parent_span_id.is_empty() && parent_span_id.len() != 8 {
        return Some("parent_span_id must be empty or 8 bytes");
    }
    None
}

/// Removes invalid spans in place (and scopes/resources left empty by that).
pub fn remove_invalid(resource_spans: &mut Vec<ResourceSpans>) -> Rejected {
    let mut rejected = Rejected::default();
    // Fast path: the common request is entirely valid and costs one pass, no moves.
    let all_ok = resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .all(|s| problem(s).is_none());
    if all_ok {
        return rejected;
    }
    for rs in resource_spans.iter_mut() {
        for ss in rs.scope_spans.iter_mut() {
            ss.spans.retain(|s| match problem(s) {
                None => true,
                Some(p) => {
                    if rejected.spans == 0 {
                        rejected.message = format!("span {:?}: {p}", s.name);
                    }
                    rejected.spans += 1;
                    false
                }
            });
        }
        rs.scope_spans.retain(|s| !s.spans.is_empty());
    }
    resource_spans.retain(|r| !r.scope_spans.is_empty());
    rejected
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::ScopeSpans;

    fn span(tid: usize, sid: usize) -> Span {
        Span {
            trace_id: vec![1; tid],
            span_id: vec![2; sid],
            name: "x".into(),
            ..Default::default()
        }
    }

    #[test]
    fn removes_only_bad_spans() {
        let mut rs = vec![
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(16, 8), span(15, 8), span(16, 0)],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(3, 8)],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ];
        let r = remove_invalid(&mut rs);
        assert_eq!(r.spans, 3);
        assert!(r.message.contains("trace_id must be 16 bytes"));
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].scope_spans[0].spans.len(), 1);
    }
}
