//! Every digest path the CPU has, forced in turn, against the single-lane path and the
//! published vectors.

use phsync_hash::{
    batch_path, derive_keys, derive_keys_with, new_random_digests, verify_nt_hashes, Isa, KeyJob,
    NtHash, PathChoice, PhsDigest,
};
use phsync_testkit::vectors::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn salt(hex_str: &str) -> [u8; 10] {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

#[test]
fn every_path_reproduces_the_published_vectors() {
    let nts: Vec<NtHash> = DIGEST_VECTORS
        .iter()
        .map(|(pw, ..)| NtHash::from_password(pw).unwrap())
        .collect();
    let jobs: Vec<KeyJob> = DIGEST_VECTORS
        .iter()
        .zip(&nts)
        .map(|((_, s, it, _), nt)| KeyJob {
            nt,
            salt: salt(s),
            iterations: *it,
        })
        .collect();
    let control_nt = NtHash::from_password(CONTROL_PASSWORD).unwrap();
    let mut all = jobs;
    all.push(KeyJob {
        nt: &control_nt,
        salt: salt(CONTROL_SALT),
        iterations: 1000,
    });
    let mut expected: Vec<String> = DIGEST_VECTORS
        .iter()
        .map(|(.., d)| {
            d.split(',')
                .nth(3)
                .unwrap()
                .trim_end_matches(';')
                .to_string()
        })
        .collect();
    expected.push(CONTROL_CORRECT_KEY.to_string());

    println!("available: {:?}", Isa::available());
    for isa in Isa::available() {
        let keys = derive_keys_with(isa, &all);
        for (k, e) in keys.iter().zip(&expected) {
            assert_eq!(&hex::encode(k), e, "{}", isa.name());
        }
        for (_, wrong) in CONTROL_WRONG_KEYS {
            assert_ne!(&hex::encode(keys.last().unwrap()), wrong);
        }
    }
    let keys = derive_keys(&all);
    assert_eq!(hex::encode(keys.last().unwrap()), CONTROL_CORRECT_KEY);
}

/// Thousands of random inputs, with mixed iteration counts and batch sizes that are not
/// multiples of 8 or 16.
#[test]
fn every_path_matches_the_single_lane_path_on_random_inputs() {
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let batch = proptest::collection::vec((any::<[u8; 16]>(), any::<[u8; 10]>(), 1u32..=6), 0..=70);
    let total = std::cell::Cell::new(0usize);
    runner
        .run(&batch, |items| {
            let nts: Vec<NtHash> = items.iter().map(|(b, ..)| NtHash::from_bytes(*b)).collect();
            let jobs: Vec<KeyJob> = items
                .iter()
                .zip(&nts)
                .map(|((_, s, it), nt)| KeyJob {
                    nt,
                    salt: *s,
                    iterations: *it,
                })
                .collect();
            total.set(total.get() + jobs.len());
            let reference: Vec<[u8; 32]> = jobs
                .iter()
                .map(|j| {
                    *PhsDigest::from_nt_hash(j.nt, j.salt, j.iterations)
                        .unwrap()
                        .key()
                })
                .collect();
            for isa in Isa::available() {
                prop_assert_eq!(&derive_keys_with(isa, &jobs), &reference, "{}", isa.name());
            }
            prop_assert_eq!(&derive_keys(&jobs), &reference);
            Ok(())
        })
        .unwrap();
    assert!(total.get() > 1000, "only {} random inputs", total.get());
}

#[test]
fn independent_reference_agrees_at_full_iteration_count() {
    use pbkdf2::pbkdf2_hmac;
    use sha2::Sha256;
    let nts: Vec<NtHash> = (0..37u8)
        .map(|i| NtHash::from_bytes([i.wrapping_mul(37); 16]))
        .collect();
    let jobs: Vec<KeyJob> = nts
        .iter()
        .enumerate()
        .map(|(i, nt)| KeyJob {
            nt,
            salt: [i as u8; 10],
            iterations: 1000,
        })
        .collect();
    for isa in Isa::available() {
        for (job, key) in jobs.iter().zip(derive_keys_with(isa, &jobs)) {
            let password: Vec<u8> = hex::encode_upper(job.nt.as_bytes())
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect();
            let mut reference = [0u8; 32];
            pbkdf2_hmac::<Sha256>(&password, &job.salt, 1000, &mut reference);
            assert_eq!(key, reference, "{}", isa.name());
        }
    }
}

#[test]
fn batch_digests_verify_and_reject_like_single_ones() {
    let passwords: Vec<String> = (0..53).map(|i| format!("Batch-Passw0rd-{i}")).collect();
    let nts: Vec<NtHash> = passwords
        .iter()
        .map(|p| NtHash::from_password(p).unwrap())
        .collect();
    let refs: Vec<&NtHash> = nts.iter().collect();
    let digests = new_random_digests(&refs).unwrap();
    assert_eq!(digests.len(), 53);
    for (d, nt) in digests.iter().zip(&nts) {
        assert_eq!(d.iterations(), 1000);
        assert!(d.matches_nt_hash(nt));
    }
    let mut salts: Vec<_> = digests.iter().map(|d| *d.salt()).collect();
    salts.sort();
    salts.dedup();
    assert_eq!(salts.len(), 53, "salts must be fresh per digest");
    let right: Vec<(&PhsDigest, &NtHash)> = digests.iter().zip(&nts).collect();
    assert!(verify_nt_hashes(&right).iter().all(|&ok| ok));
    let shifted: Vec<(&PhsDigest, &NtHash)> =
        digests.iter().zip(nts.iter().cycle().skip(1)).collect();
    assert!(verify_nt_hashes(&shifted).iter().all(|&ok| !ok));
}

/// The key an independent PBKDF2 (the `pbkdf2` and `hmac` crates) derives for a job.
fn pbkdf2_crate_key(job: &KeyJob<'_>) -> [u8; 32] {
    let password: Vec<u8> = hex::encode_upper(job.nt.as_bytes())
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(&password, &job.salt, job.iterations, &mut key);
    key
}

/// Every batch size from 1 to 17 (full, partial and multiple kernel calls for 1, 2, 4, 8 and
/// 16 lanes), random NT hashes, salts and iteration counts mixed within a batch, plus one
/// batch per size at 1000 iterations: every path against the independent PBKDF2 and the
/// single-lane paths.
#[test]
fn every_path_matches_independent_pbkdf2_at_every_batch_size() {
    let mut runner = TestRunner::new(Config {
        cases: 4,
        failure_persistence: None,
        ..Config::default()
    });
    let isas = Isa::available();
    println!("available: {isas:?}");
    for n in 1..=17usize {
        let full =
            proptest::collection::vec((any::<[u8; 16]>(), any::<[u8; 10]>(), Just(1000u32)), n);
        let mixed = proptest::collection::vec((any::<[u8; 16]>(), any::<[u8; 10]>(), 1u32..=40), n);
        for strategy in [full.boxed(), mixed.boxed()] {
            runner
                .run(&strategy, |items| {
                    let nts: Vec<NtHash> =
                        items.iter().map(|(b, ..)| NtHash::from_bytes(*b)).collect();
                    let jobs: Vec<KeyJob> = items
                        .iter()
                        .zip(&nts)
                        .map(|((_, s, it), nt)| KeyJob {
                            nt,
                            salt: *s,
                            iterations: *it,
                        })
                        .collect();
                    let reference: Vec<[u8; 32]> = jobs.iter().map(pbkdf2_crate_key).collect();
                    let single = derive_keys_with(Isa::scalar(), &jobs);
                    prop_assert_eq!(&single, &reference, "single-lane, batch of {}", n);
                    for &isa in &isas {
                        prop_assert_eq!(
                            &derive_keys_with(isa, &jobs),
                            &reference,
                            "{}, batch of {}",
                            isa.name(),
                            n
                        );
                    }
                    prop_assert_eq!(&derive_keys(&jobs), &reference, "chosen, batch of {}", n);
                    Ok(())
                })
                .unwrap();
        }
    }
}

#[test]
fn the_interleaved_sha_ni_paths_exist_where_the_cpu_has_sha_extensions() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sha") && std::arch::is_x86_feature_detected!("sse4.1") {
        let isas = Isa::available();
        assert!(
            isas.contains(&Isa::ShaNiX2) && isas.contains(&Isa::ShaNiX4),
            "{isas:?}"
        );
        assert_eq!((Isa::ShaNiX2.lanes(), Isa::ShaNiX4.lanes()), (2, 4));
    }
}

#[test]
fn path_tokens_round_trip_and_bad_ones_name_the_choices() {
    for isa in Isa::ALL {
        assert_eq!(Isa::parse(isa.token()), Ok(isa));
        assert_eq!(Isa::parse(&isa.token().to_uppercase()), Ok(isa));
    }
    let e = Isa::parse("sse9").unwrap_err();
    assert!(
        e.contains("\"sse9\"") && e.contains("avx512") && e.contains("sha-ni-x4"),
        "{e}"
    );
}

#[test]
fn the_batch_path_is_measured_once_and_is_the_fastest_measured() {
    let choice = PathChoice::choose(None);
    let available = Isa::available();
    assert!(!choice.forced && choice.override_note.is_none());
    assert!(available.contains(&choice.isa));
    if available.len() > 1 {
        let measured: Vec<Isa> = choice.measured.iter().map(|m| m.0).collect();
        assert_eq!(measured, available, "every available path is timed");
        assert!(choice.measured.iter().all(|m| m.1 > 0.0));
        let fastest = choice
            .measured
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert_eq!(choice.isa, fastest.0, "{:?}", choice.measured);
    }
    // Cached for the process: the same choice every time.
    assert!(std::ptr::eq(batch_path(), batch_path()));
    assert!(available.contains(&Isa::best()));
}

#[test]
fn an_override_forces_the_path_and_a_bad_one_is_reported_not_obeyed() {
    for isa in Isa::available() {
        let choice = PathChoice::choose(Some(isa.token()));
        assert_eq!((choice.isa, choice.forced), (isa, true));
        assert!(choice.measured.is_empty() && choice.override_note.is_none());
        for n in [1, 5, 40] {
            assert_eq!(
                choice.for_batch(n),
                isa,
                "forced paths apply to every batch"
            );
        }
    }
    let choice = PathChoice::choose(Some("avx1024"));
    assert!(!choice.forced);
    let note = choice.override_note.unwrap();
    assert!(
        note.contains("PHSYNC_DIGEST_PATH") && note.contains("measurement"),
        "{note}"
    );
    assert!(Isa::available().contains(&choice.isa));
    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("avx512f") {
        let choice = PathChoice::choose(Some("avx512"));
        assert!(!choice.forced);
        assert!(choice.override_note.unwrap().contains("not available"));
    }
    // Empty means unset.
    assert!(PathChoice::choose(Some(" ")).override_note.is_none());
}

/// Small batches go to the path that finishes them first, not to the widest one.
#[test]
fn a_batch_goes_to_the_path_that_needs_least_time_for_its_size() {
    let choice = PathChoice {
        isa: Isa::Avx512,
        forced: false,
        measured: vec![
            (Isa::ShaExtensions, 8_000.0),
            (Isa::ShaNiX2, 12_000.0),
            (Isa::Avx512, 24_000.0),
        ],
        override_note: None,
    };
    // 1: 1/8000 < 2/12000 < 16/24000. 2: 2/12000 < 2/8000. 16: 16/24000 < 8*2/12000.
    // 17: 2*16/24000 = 1.33 ms < 9*2/12000 = 1.5 ms.
    for (n, isa) in [
        (0, Isa::ShaExtensions),
        (1, Isa::ShaExtensions),
        (2, Isa::ShaNiX2),
        (6, Isa::ShaNiX2),
        (16, Isa::Avx512),
        (17, Isa::Avx512),
        (1000, Isa::Avx512),
    ] {
        assert_eq!(choice.for_batch(n), isa, "batch of {n}");
    }
}
