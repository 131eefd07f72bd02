//! The published vectors of `shared/docs/phs-spec.md` §1, shared by every test front door.
#![allow(dead_code)]

pub const NT_VECTORS: &[(&str, &str)] = &[
    ("", "31D6CFE0D16AE931B73C59D7E0C089C0"),
    ("password", "8846F7EAEE8FB117AD06BDD830B7586C"),
    ("Password", "A4F49C406510BDCAB6824EE7C30FD852"),
    ("Pa$$w0rd", "92937945B518814341DE3F726500D4FF"),
    ("test", "0CB6948805F797BF2A82807973B89537"),
    ("žluťoučký kůň", "0D90FB43740BE81B67E6A79A113817C4"),
    ("SecREt01", "CD06CA7C7E10C99B1D33B7485A2ED808"),
];

/// (password, salt hex, iterations, digest string as published)
pub const DIGEST_VECTORS: &[(&str, &str, u32, &str)] = &[
    ("Pa$$w0rd", "181a3024085fcee2f70e", 1000, "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;"),
    ("", "01cda06eceb9d9bc2621", 1000, "v1;PPH1_MD4,01cda06eceb9d9bc2621,1000,9d4fc778add44776555d3fa6ccb4f9637f25e34a62dbc5fa0f782ef8c762c902;"),
    ("Pa$$w0rd", "317ee9d1dec6508fa510", 1000, "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;"),
    ("Pa$$w0rd", "317ee9d1dec6508fa510", 100, "v1;PPH1_MD4,317ee9d1dec6508fa510,100,f4a257ffec53809081a605ce8ddedfbc9df9777b80256763bc0a6dd895ef404f;"),
    ("openwall", "724b754c4b6d30526f36", 100, "v1;PPH1_MD4,724b754c4b6d30526f36,100,367ff0ac2a1cb334bb26609c8bfc8ae5f619d1eaf07568df040f407504a20241;"),
    ("hashcat", "54188415275183448824", 100, "v1;PPH1_MD4,54188415275183448824,100,55b530f052a9af79a7ba9c466dddcb8b116f8babf6c3873a51a3898fb008e123"),
];

/// Negative controls: `Pa$$w0rd`, salt 00010203040506070809, c = 1000.
pub const CONTROL_PASSWORD: &str = "Pa$$w0rd";
pub const CONTROL_SALT: &str = "00010203040506070809";
pub const CONTROL_CORRECT_KEY: &str =
    "ebbc7201bdbb81a9c23c9d47d2273a2d5097c589c707451d3d0accb1db62f7c6";
/// (what the port got wrong, the key it produces)
pub const CONTROL_WRONG_KEYS: &[(&str, &str)] = &[
    (
        "UTF-16LE(lower hex)",
        "f5a557246529124e0b2540ee166a483ac55925837bb55e166c28fe567711e0b2",
    ),
    (
        "ASCII(UPPER hex)",
        "6a2fa1a97a88e1fb248ec970b23c98254bf13ecabd94b1932fbd1994dc01c813",
    ),
    (
        "raw 16-byte NT hash",
        "c57b68c577ff987595710db89f5be365d266abdd2e2dbf46036e5a9ee55a74d7",
    ),
];

pub fn control_digest(key_hex: &str) -> String {
    format!("v1;PPH1_MD4,{CONTROL_SALT},1000,{key_hex};")
}

/// Digest strings that must be refused, each for a different reason.
pub const MALFORMED_DIGESTS: &[&str] = &[
    "",
    "v1;PPH1_MD4",
    "v1;PPH1_MD4,",
    "v2;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD5,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "V1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f7,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e00,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f7zz,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,0,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,-1,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,+1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,01000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1000001,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,99999999999,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1e3,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a00;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1000,g39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;x",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a,extra;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1000;",
    " v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a;\n",
    "v1;PPH1_MD4,181a3024085fcee2f70e,1000,b39525c3bc72a1136fcf7c8a338e0c14313d0450d1a4c98ef0a6ddada3bc5b0a\u{e9};",
    "8846F7EAEE8FB117AD06BDD830B7586C",
];
