//! Tests of bundle verification: an honest bundle passes and its figures are
//! recomputed; every kind of tampering is caught and named.

use super::fixture::*;
use super::*;
use crate::report::Report;

const N: u64 = 24;

fn kinds(v: &BundleVerdict) -> Vec<ProblemKind> {
    let mut k: Vec<ProblemKind> = v.problems.iter().map(|p| p.kind).collect();
    k.dedup();
    k
}

/// Verifies in memory and as a line-oriented stream; both must agree.
fn verify(b: &Bundle) -> BundleVerdict {
    let key = log_key().verifying_key();
    let v = verify_bundle(b, &key);
    let lines = b.to_lines();
    let streamed = verify_bundle_stream(lines.as_slice(), &key, &[]).unwrap();
    assert_eq!(streamed, v, "streamed and in-memory verdicts differ");
    v
}

/// Decodes, edits and re-signs entry `i`'s report with `key`.
fn edit(b: &mut Bundle, i: usize, key: &SigningKey, f: impl FnOnce(&mut Report)) {
    let (mut r, _) = b.entries[i].report.peek().unwrap();
    f(&mut r);
    b.entries[i].report = r.sign(key).0;
}

#[test]
fn honest_bundle_verifies_and_its_figures_are_recomputed() {
    let w = world(N, &Plant::default());
    let b = w.bundle(N);
    let v = verify(&b);
    assert!(v.ok, "{:?}", v.problems);
    assert!(!v.untrusted);
    assert_eq!(v.reports_accepted, 2 * N);
    let f = &v.figures;
    assert_eq!((f.agents_enrolled, f.agents_reporting), (2, 2));
    assert_eq!((f.devices_seen, f.devices_reporting), (6, 6));
    assert_eq!(f.time_coverage, 1.0);
    assert_eq!(f.uncovered_count, 0);
    assert_eq!(f.energy.len(), 1);
    assert!(
        (f.energy[0].quantity - 2.5 * 6.0 * N as f64).abs() < 1e-9,
        "{:?}",
        f.energy
    );
    assert_eq!(f.state_seconds["productive"], 600 * 6 * N);
    assert_eq!(f.parts, 10 * 6 * N);
    assert_eq!(f.inventory.as_ref().unwrap().devices.len(), 6);
    // Both forms round-trip; the line form shares the top of the audit paths.
    let again = Bundle::from_json(&b.to_json()).unwrap();
    assert_eq!(again.entries, b.entries);
    assert_eq!(again.format, BUNDLE_FORMAT_V1);
    let lines = b.to_lines();
    let again = Bundle::read(lines.as_slice()).unwrap();
    assert_eq!(again, b);
    assert_eq!(
        verify_bundle_stream(b.to_json().as_slice(), &log_key().verifying_key(), &[])
            .unwrap()
            .figures,
        v.figures
    );
    let full: usize = b.entries.iter().map(|e| e.inclusion_proof.len()).sum();
    let mut w = BundleWriter::new(Vec::new(), &b.header()).unwrap();
    for e in &b.entries {
        w.entry(e).unwrap();
    }
    assert_eq!(
        (w.proof_nodes_written + w.proof_nodes_reused) as usize,
        full
    );
    assert!(
        w.proof_nodes_written * 2 < full as u64,
        "{}",
        w.proof_nodes_written
    );
}

#[test]
fn an_outage_shows_as_uncovered_time_not_as_a_problem() {
    let w = world(
        N,
        &Plant {
            outage: Some((4, 10)),
            ..Plant::default()
        },
    );
    let v = verify(&w.bundle(N));
    assert!(v.ok, "{:?}", v.problems);
    assert_eq!(v.figures.uncovered_count, 1);
    let gap = &v.figures.uncovered[0];
    assert_eq!(
        (gap.agent_id.as_str(), gap.start, gap.end),
        ("gw-1", T0 + 4 * WINDOW, T0 + 10 * WINDOW)
    );
    assert_eq!(v.figures.covered_secs, (2 * N - 6) * WINDOW as u64);
}

#[test]
fn a_changed_value_is_caught_whether_re_signed_or_not() {
    let w = world(N, &Plant::default());
    // Changed without the agent's key: the signature fails, and the next
    // report no longer links to what is there.
    let mut b = w.bundle(N);
    let (mut r, _) = b.entries[5].report.peek().unwrap();
    r.summaries[0].energy[0].quantity = 0.1;
    b.entries[5].report.payload = B64.encode(r.canonical_bytes());
    assert_eq!(
        kinds(&verify(&b)),
        vec![ProblemKind::Signature, ProblemKind::Chain]
    );
    // Changed by someone holding the agent's key after the report was
    // logged: the log does not contain it, and the next report's link breaks.
    let mut b = w.bundle(N);
    edit(&mut b, 5, &agent_key(8), |r| {
        r.summaries[0].energy[0].quantity = 0.1
    });
    let v = verify(&b);
    assert_eq!(
        kinds(&v),
        vec![ProblemKind::Inclusion, ProblemKind::Chain],
        "{:?}",
        v.problems
    );
    assert_eq!(v.reports_accepted, 2 * N - 1);
}

#[test]
fn a_removed_report_breaks_the_chain() {
    let w = world(N, &Plant::default());
    let mut b = w.bundle(N);
    let gone = b.entries.remove(10);
    let (r, _) = gone.report.peek().unwrap();
    let v = verify(&b);
    assert_eq!(kinds(&v), vec![ProblemKind::Chain]);
    assert_eq!(v.problems[0].agent_id.as_deref(), Some(r.agent_id.as_str()));
    assert!(
        v.problems[0].message.contains("missing"),
        "{}",
        v.problems[0].message
    );
}

#[test]
fn reordered_reports_are_caught() {
    let w = world(N, &Plant::default());
    let mut b = w.bundle(N);
    b.entries.swap(4, 6);
    let k = kinds(&verify(&b));
    assert!(
        k.contains(&ProblemKind::Order) && k.contains(&ProblemKind::Chain),
        "{k:?}"
    );
}

#[test]
fn a_report_re_signed_with_another_key_is_caught() {
    let w = world(N, &Plant::default());
    let mut b = w.bundle(N);
    edit(&mut b, 3, &agent_key(99), |_| {});
    assert_eq!(kinds(&verify(&b)), vec![ProblemKind::Signature]);
    // Swapping the enrolled key for the forger's as well breaks the log's
    // attestation of the enrolments.
    let agent = b.entries[3].report.peek().unwrap().0.agent_id;
    for e in b.enrolments.iter_mut().filter(|e| e.agent_id == agent) {
        e.public_key = crate::report::verifying_key_to_b64(&agent_key(99).verifying_key());
    }
    let v = verify(&b);
    assert!(v.untrusted);
    assert!(
        kinds(&v).contains(&ProblemKind::Enrolments),
        "{:?}",
        v.problems
    );
}

#[test]
fn a_rolled_back_checkpoint_does_not_cover_the_reports() {
    let w = world(N, &Plant::default());
    let mut b = w.bundle(N);
    b.checkpoint = w.earlier.clone();
    let v = verify(&b);
    // The earlier checkpoint is genuinely signed, but the enrolment
    // attestation names the size it was made for, and the later reports'
    // proofs do not lead to the earlier root.
    assert!(
        kinds(&v).contains(&ProblemKind::Enrolments),
        "{:?}",
        v.problems
    );
    assert!(
        kinds(&v).contains(&ProblemKind::Inclusion),
        "{:?}",
        v.problems
    );
}

#[test]
fn proofs_that_do_not_match_are_caught() {
    let w = world(N, &Plant::default());
    let mut b = w.bundle(N);
    let other = b.entries[1].inclusion_proof.clone();
    b.entries[2].inclusion_proof = other;
    assert_eq!(kinds(&verify(&b)), vec![ProblemKind::Inclusion]);
    let mut b = w.bundle(N);
    b.entries[2].leaf_index = b.entries[1].leaf_index + 1;
    assert!(kinds(&verify(&b)).contains(&ProblemKind::Inclusion));
}

#[test]
fn a_forged_checkpoint_or_a_foreign_log_key_is_untrusted() {
    let w = world(N, &Plant::default());
    let mut b = w.bundle(N);
    b.checkpoint.checkpoint.size += 1;
    let v = verify(&b);
    assert!(
        v.untrusted && kinds(&v).contains(&ProblemKind::Checkpoint),
        "{:?}",
        v.problems
    );
    let b = w.bundle(N);
    let v = verify_bundle(&b, &agent_key(1).verifying_key());
    assert!(v.untrusted);
    assert!(kinds(&v).contains(&ProblemKind::LogKey));
}

#[test]
fn a_report_of_another_enterprise_is_refused() {
    let w = world(N, &Plant::default());
    let mut entries = w.ours.clone();
    // The neighbour's first report is leaf 0 of the log (signing is
    // deterministic, so re-creating it gives the same envelope).
    assert!(w.ours.iter().all(|(i, _)| *i != 0));
    let n = chain("gw-n", &neighbour(), &agent_key(9), 1, &Plant::default());
    entries.insert(0, (0, n[0].clone()));
    let mut enrolments = w.enrolments.clone();
    enrolments.push(enrolment("gw-n", &neighbour(), &agent_key(9)));
    let v = verify(&w.bundle_with(N, enrolments, entries));
    assert_eq!(kinds(&v), vec![ProblemKind::Enterprise], "{:?}", v.problems);
    assert_eq!(v.reports_accepted, 2 * N);
}

#[test]
fn reports_after_a_revocation_are_refused() {
    let w = world(N, &Plant::default());
    let mut enrolments = w.enrolments.clone();
    enrolments[0].revoked_at = Some(T0 + 10 * WINDOW);
    let v = verify(&w.bundle_with(N, enrolments, w.ours.clone()));
    assert_eq!(kinds(&v), vec![ProblemKind::RevokedKey]);
    // Windows 9..N of gw-1 end at or after the revocation.
    assert_eq!(v.problems.len() as u64, N - 9);
    assert_eq!(v.figures.reports, 2 * N - (N - 9));
}

#[test]
fn a_report_outside_the_window_is_refused() {
    let w = world(N, &Plant::default());
    let b = w.bundle(N - 1);
    let v = verify(&b);
    assert_eq!(kinds(&v), vec![ProblemKind::Window]);
    assert_eq!(v.problems.len(), 2);
}

fn stream(bytes: &[u8]) -> BundleVerdict {
    verify_bundle_stream(bytes, &log_key().verifying_key(), &[]).unwrap()
}

fn lines_of(b: &Bundle) -> Vec<String> {
    String::from_utf8(b.to_lines())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

#[test]
fn a_truncated_or_padded_line_bundle_is_untrusted() {
    let w = world(N, &Plant::default());
    let lines = lines_of(&w.bundle(N));
    assert_eq!(lines.len() as u64, 2 * N + 2);
    assert!(stream(&join(&lines)).ok);
    // Cut at a line boundary: no trailer.
    let v = stream(&join(&lines[..lines.len() - 3]));
    assert!(
        v.untrusted && kinds(&v) == vec![ProblemKind::Format],
        "{:?}",
        v.problems
    );
    // The last entry removed, trailer kept: the count does not match.
    let mut short = lines.clone();
    short.remove(lines.len() - 2);
    let v = stream(&join(&short));
    assert!(v.untrusted, "{:?}", v.problems);
    // Text after the trailer.
    let mut long = lines.clone();
    long.push(lines[1].clone());
    assert!(stream(&join(&long)).untrusted);
    // A line that is not an entry is named, and the rest still checked.
    let mut bad = lines.clone();
    bad[3] = "{\"leaf_index\": \"x\"}".into();
    let v = stream(&join(&bad));
    assert_eq!(
        v.problems[0].kind,
        ProblemKind::Malformed,
        "{:?}",
        v.problems
    );
    assert!(v.problems[0].message.contains("line 4"), "{:?}", v.problems);
    // The lines after it lose the path nodes they would have reused from it.
    assert!(v.reports_accepted >= 2 * N - 3, "{}", v.reports_accepted);
    // A header that is not one is an error, not a verdict.
    assert!(verify_bundle_stream(&b"{}\n"[..], &log_key().verifying_key(), &[]).is_err());
}

#[test]
fn a_wrong_proof_reuse_count_fails_inclusion() {
    let w = world(N, &Plant::default());
    let mut lines = lines_of(&w.bundle(N));
    let mut e: serde_json::Value = serde_json::from_str(&lines[5]).unwrap();
    let reuse = e["proof_reuse"].as_u64().unwrap();
    assert!(reuse > 0, "{e}");
    e["proof_reuse"] = (reuse - 1).into();
    lines[5] = e.to_string();
    let v = stream(&join(&lines));
    assert_eq!(kinds(&v), vec![ProblemKind::Inclusion], "{:?}", v.problems);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Flipping any bit of any entry's payload, signature or proof, or
        /// moving its leaf index, never yields an ok bundle.
        #[test]
        fn any_flipped_bit_in_an_entry_is_caught(entry in any::<prop::sample::Index>(),
                                                 what in 0u8..4, pos in any::<prop::sample::Index>(),
                                                 bit in 0u8..8, shift in 1u64..5) {
            let w = world(6, &Plant::default());
            let mut b = w.bundle(6);
            let e = &mut b.entries[entry.index(12)];
            match what {
                0 | 1 => {
                    let field = if what == 0 { &mut e.report.payload } else { &mut e.report.signature };
                    let mut raw = B64.decode(&*field).unwrap();
                    let i = pos.index(raw.len());
                    raw[i] ^= 1 << bit;
                    *field = B64.encode(&raw);
                }
                2 => {
                    let n = pos.index(e.inclusion_proof.len());
                    e.inclusion_proof[n].0[usize::from(bit) * 4 % 32] ^= 1 << bit;
                }
                _ => e.leaf_index += shift,
            }
            prop_assert!(!verify(&b).ok);
        }
    }
}
