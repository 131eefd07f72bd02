//! Every digest path the CPU has, forced in turn, against the single-lane path and the
//! published vectors.

use phsync_hash::{
    derive_keys, derive_keys_with, new_random_digests, verify_nt_hashes, Isa, KeyJob, NtHash,
    PhsDigest,
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
