//! The Spark paper's two in-memory examples on a master and two agents:
//! logistic regression (cached points, this iteration's weights bound as a
//! parameter) and log mining (cached error messages, one count per pattern
//! bound as a parameter), each against a native computation; logistic
//! regression also as the Python and JavaScript examples.

use crate::cluster::{numbers, submit_wait};
use crate::support::{c_guest, cluster, guest, js_guest, python_guest};

/// `label x1 … xD` lines: labels ±1, features in [-1, 1) shifted a little
/// towards the label, so the classes mostly separate.
fn points(n: usize, d: usize, seed: u64) -> String {
    let mut r = numbers(seed);
    let mut unit = move || r.next().unwrap() as f64 / (1u64 << 31) as f64;
    let mut text = String::new();
    for _ in 0..n {
        let y = if unit() < 0.5 { -1.0 } else { 1.0 };
        text.push_str(&format!("{y}"));
        for _ in 0..d {
            text.push_str(&format!(" {:.4}", unit() * 2.0 - 1.0 + 0.3 * y));
        }
        text.push('\n');
    }
    text
}

/// The Spark example natively: parse once, then `iterations` passes.
fn native_logreg(text: &str, d: usize, iterations: u32) -> Vec<f64> {
    let points: Vec<(f64, Vec<f64>)> = text
        .lines()
        .map(|l| {
            let mut f = l.split_ascii_whitespace().map(|v| v.parse::<f64>().unwrap());
            (f.next().unwrap(), f.collect())
        })
        .collect();
    let mut w = vec![0.0; d];
    for _ in 0..iterations {
        let mut g = vec![0.0; d];
        for (y, x) in &points {
            let dot: f64 = w.iter().zip(x).map(|(w, x)| w * x).sum();
            let scale = (1.0 / (1.0 + (-y * dot).exp()) - 1.0) * y;
            for (g, x) in g.iter_mut().zip(x) {
                *g += scale * x;
            }
        }
        for (w, g) in w.iter_mut().zip(&g) {
            *w -= g;
        }
    }
    w
}

#[test]
fn logistic_regression_on_a_master_and_two_agents_equals_a_native_descent() {
    logreg_equals_native(&guest("logreg"));
}

#[test]
fn the_python_logistic_regression_equals_a_native_descent() {
    logreg_equals_native(&python_guest("logreg"));
}

#[test]
fn the_c_logistic_regression_equals_a_native_descent() {
    logreg_equals_native(&c_guest("logreg"));
}

#[test]
fn the_javascript_logistic_regression_equals_a_native_descent() {
    logreg_equals_native(&js_guest("logreg"));
}

/// The logistic regression example `wasm` on a master and two agents, against
/// the native descent.
fn logreg_equals_native(wasm: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    let (n, d, iterations) = (4_000, 10, 5);
    let text = points(n, d, 23);
    let input = dir.path().join("points.txt");
    std::fs::write(&input, &text).unwrap();
    let (_master, url, _agents) = cluster(dir.path(), 2);
    let status =
        submit_wait(&url, wasm, &[input.to_str().unwrap(), &d.to_string(), &iterations.to_string(), "4"]);
    assert_eq!(status["state"], "succeeded", "{status}");
    let log = status["driver_log"].as_str().unwrap();
    let timed = log.lines().filter(|l| l.starts_with("[info] iteration ") && l.ends_with(" s")).count();
    assert_eq!(timed, iterations as usize, "{log}");
    let got: Vec<f64> = log
        .lines()
        .find_map(|l| l.strip_prefix("[info] final w: "))
        .unwrap_or_else(|| panic!("no final weights in {log}"))
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();

    let want = native_logreg(&text, d, iterations);
    assert_eq!(got.len(), d);
    // The cluster sums each gradient in another order (per task, then across
    // tasks), so the weights may differ in their last bits. One sum of n terms
    // of size at most 1.3 is off by at most n·ε·Σ|t| ≈ 4000 · 1.1e-16 · 5200 ≈
    // 2e-9 absolute on weights of a few hundred (the first step alone moves each
    // weight by about 0.5 · 0.3 · n), which stays far below 1e-6 relative over
    // five steps; an error in the job (a point lost or counted twice, a stale
    // weight vector) moves a weight by a whole term, at least 1e-4 of it.
    for (j, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "w[{j}]: {g} against {w}\n{log}");
    }
    assert!(want.iter().all(|w| w.abs() > 1.0), "the descent moved every weight: {want:?}");
}

#[test]
fn log_mining_on_a_master_and_two_agents_counts_as_a_native_scan() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = numbers(31);
    let words = ["mysql", "php", "disk", "timeout", "connection refused", "cache", "user", "retry"];
    let levels = ["INFO", "WARN", "ERROR", "DEBUG"];
    let mut logs = String::new();
    for i in 0..30_000u64 {
        let level = levels[(r.next().unwrap() % 4) as usize];
        let mut message = String::new();
        for _ in 0..1 + r.next().unwrap() % 4 {
            message.push_str(words[(r.next().unwrap() % words.len() as u64) as usize]);
            message.push(' ');
        }
        // One line in fifty has no message field at all.
        if r.next().unwrap().is_multiple_of(50) {
            logs.push_str(&format!("{level} truncated line {i}\n"));
        } else {
            logs.push_str(&format!("{level}\tsvc{}\t{message}at {i}\n", i % 7));
        }
    }
    let input = dir.path().join("logs.txt");
    std::fs::write(&input, &logs).unwrap();
    let (_master, url, _agents) = cluster(dir.path(), 2);
    let patterns = ["mysql", "php", "connection refused", "no such thing"];
    let mut args = vec![input.to_str().unwrap()];
    args.extend(patterns);
    let status = submit_wait(&url, &guest("logmining"), &args);
    assert_eq!(status["state"], "succeeded", "{status}");
    let log = status["driver_log"].as_str().unwrap();

    let messages: Vec<&str> =
        logs.lines().filter(|l| l.starts_with("ERROR")).filter_map(|l| l.split('\t').nth(2)).collect();
    assert!(messages.len() > 5_000, "{} error messages", messages.len());
    assert!(log.contains(&format!("[info] errors: {}\n", messages.len())), "{log}");
    for p in patterns {
        let want = messages.iter().filter(|m| m.contains(p)).count();
        assert!(log.contains(&format!("[info] {p}: {want}\n")), "{p}: {want} in\n{log}");
    }
    assert!(log.contains("[info] no such thing: 0\n"), "{log}");
}
