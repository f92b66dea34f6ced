//! Tests with RFC vectors where they exist; derived values were computed
//! independently (Python hmac/hashlib/cryptography) and are pinned here.

use super::*;
use ring::rand::SystemRandom;
use std::net::{Ipv4Addr, SocketAddrV4};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---- PRF (RFC 4231 / RFC 4868 test vectors) ----

#[test]
fn prf_ids_and_lengths() {
    for (id, p, len) in [
        (5, Prf::HmacSha256, 32),
        (6, Prf::HmacSha384, 48),
        (7, Prf::HmacSha512, 64),
    ] {
        assert_eq!(Prf::from_id(id), Some(p));
        assert_eq!(p.id(), id);
        assert_eq!(p.output_len(), len);
    }
    assert_eq!(Prf::from_id(2), None);
}

#[test]
fn prf_rfc4231_case1_sha256() {
    let out = Prf::HmacSha256.compute(&[0x0b; 20], &[b"Hi ", b"There"]);
    assert_eq!(
        to_hex(&out),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
}

#[test]
fn prf_rfc4231_case2_sha384() {
    let out = Prf::HmacSha384.compute(b"Jefe", &[b"what do ya want for nothing?"]);
    assert_eq!(
        to_hex(&out),
        "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
         8e2240ca5e69e2c78b3239ecfab21649"
    );
}

#[test]
fn prf_rfc4231_case6_sha512_long_key() {
    let out = Prf::HmacSha512.compute(
        &[0xaa; 131],
        &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
    );
    assert_eq!(
        to_hex(&out),
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
         6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"
    );
}

#[test]
fn prf_plus_structure_and_limit() {
    let p = Prf::HmacSha256;
    let (k, s) = (b"key".as_slice(), b"seed".as_slice());
    let t1 = p.compute(k, &[s, &[1]]);
    let t2 = p.compute(k, &[&t1, s, &[2]]);
    let out = p.plus(k, &[s], 50).unwrap();
    assert_eq!(out, [t1.as_slice(), &t2[..18]].concat());
    assert_eq!(p.plus(k, &[s], 255 * 32).unwrap().len(), 255 * 32);
    assert_eq!(p.plus(k, &[s], 255 * 32 + 1), Err(CryptoError::Unsupported));
    assert_eq!(p.plus(k, &[s], 0).unwrap(), Vec::<u8>::new());
}

// ---- Key exchange ----

#[test]
fn group_ids() {
    assert_eq!(Group::from_id(31), Some(Group::Curve25519));
    assert_eq!(Group::from_id(19), Some(Group::Ecp256));
    assert_eq!(Group::from_id(14), None);
    assert_eq!(Group::Curve25519.id(), 31);
    assert_eq!(Group::Ecp256.public_len(), 64);
}

#[test]
fn dh_agreement_round_trip() {
    let rng = SystemRandom::new();
    for (g, secret_len) in [(Group::Curve25519, 32), (Group::Ecp256, 32)] {
        let a = KeyExchange::generate(g, &rng).unwrap();
        let b = KeyExchange::generate(g, &rng).unwrap();
        assert_eq!(a.group(), g);
        assert_eq!(a.public().len(), g.public_len());
        assert_ne!(a.public(), b.public());
        let (pa, pb) = (a.public().to_vec(), b.public().to_vec());
        let sa = a.agree(&pb).unwrap();
        let sb = b.agree(&pa).unwrap();
        assert_eq!(sa, sb);
        assert_eq!(sa.len(), secret_len);
    }
}

#[test]
fn dh_rejects_bad_peer_values() {
    let rng = SystemRandom::new();
    // X25519: wrong length and the all-zero (small-order) point.
    let x = KeyExchange::generate(Group::Curve25519, &rng).unwrap();
    assert_eq!(x.agree(&[9; 31]), Err(CryptoError::BadKey));
    let x = KeyExchange::generate(Group::Curve25519, &rng).unwrap();
    assert_eq!(x.agree(&[0; 32]), Err(CryptoError::BadKey));
    // ECP-256: wrong length, a 65-byte SEC1 encoding, a point off the curve.
    let e = KeyExchange::generate(Group::Ecp256, &rng).unwrap();
    let mut sec1 = vec![4];
    sec1.extend_from_slice(e.public());
    assert_eq!(e.agree(&sec1), Err(CryptoError::BadKey));
    let e = KeyExchange::generate(Group::Ecp256, &rng).unwrap();
    let mut off = e.public().to_vec();
    off[63] ^= 1;
    assert_eq!(e.agree(&off), Err(CryptoError::BadKey));
    let e = KeyExchange::generate(Group::Ecp256, &rng).unwrap();
    assert_eq!(e.agree(&[0; 64]), Err(CryptoError::BadKey));
}

// ---- Transforms ----

#[test]
fn transform_ids() {
    assert_eq!(
        Encr::from_transform(20, Some(256)),
        Some(Encr::AesGcm16 { key_bits: 256 })
    );
    assert_eq!(Encr::from_transform(20, None), None);
    assert_eq!(Encr::from_transform(20, Some(192)), None);
    assert_eq!(
        Encr::from_transform(12, Some(192)),
        Some(Encr::AesCbc { key_bits: 192 })
    );
    assert_eq!(Encr::from_transform(12, Some(100)), None);
    assert_eq!(Encr::from_transform(3, Some(128)), None);
    let g = Encr::AesGcm16 { key_bits: 128 };
    assert_eq!(
        (g.id(), g.key_bits(), g.is_aead(), g.keymat_len()),
        (20, 128, true, 20)
    );
    let c = Encr::AesCbc { key_bits: 256 };
    assert_eq!(
        (c.id(), c.key_bits(), c.is_aead(), c.keymat_len()),
        (12, 256, false, 32)
    );
    for (id, i, k, icv) in [
        (12, Integ::HmacSha256_128, 32, 16),
        (13, Integ::HmacSha384_192, 48, 24),
        (14, Integ::HmacSha512_256, 64, 32),
    ] {
        assert_eq!(Integ::from_id(id), Some(i));
        assert_eq!((i.id(), i.key_len(), i.icv_len()), (id, k, icv));
    }
    assert_eq!(Integ::from_id(2), None);
}

// ---- SK payload cipher ----

#[test]
fn aes_cbc_rfc3602_vectors() {
    for (key, iv, pt, ct) in [
        (
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            b"Single block msg".to_vec(),
            "e353779c1079aeb82708942dbe77181a",
        ),
        (
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            (0u8..32).collect(),
            "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
        ),
    ] {
        let mut buf = pt.clone();
        sk::cbc_encrypt(128, &hex(key), &hex(iv), &mut buf).unwrap();
        assert_eq!(to_hex(&buf), ct);
        sk::cbc_decrypt(128, &hex(key), &hex(iv), &mut buf).unwrap();
        assert_eq!(buf, pt);
    }
}

/// McGrew–Viega GCM test case 4 (AES-128; salt‖IV = its 12-byte IV): the
/// first 60 ciphertext bytes are the vector's (CTR keystream), followed by
/// the encrypted pad-length byte and a tag over the 61-byte plaintext.
#[test]
fn gcm_known_answer_nonce_layout() {
    let keymat = hex("feffe9928665731c6d6a8f9467308308 cafebabe");
    let sk = SkCipher::new(Encr::AesGcm16 { key_bits: 128 }, &keymat, None).unwrap();
    let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let pt = hex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    );
    let rng = SystemRandom::new();
    let out = sk.seal(&aad, &pt, 0xfacedbaddecaf888, &rng).unwrap();
    assert_eq!(out.len(), sk.sealed_len(pt.len()));
    assert_eq!(out.len(), 8 + 61 + 16);
    assert_eq!(to_hex(&out[..8]), "facedbaddecaf888");
    assert_eq!(
        to_hex(&out[8..]),
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e0915d9c18da\
         a198884d73b169beec15b167fc"
    );
    assert_eq!(sk.open(&aad, &out).unwrap(), pt);
}

fn tamper_each_region(sk: &SkCipher, aad: &[u8], sealed: &[u8]) {
    // Flip a bit in the IV, the ciphertext, the ICV and the AAD.
    for pos in [0, 9, 20, sealed.len() - 1] {
        let mut t = sealed.to_vec();
        t[pos] ^= 0x80;
        assert_eq!(sk.open(aad, &t), Err(CryptoError::Integrity), "byte {pos}");
    }
    let mut a = aad.to_vec();
    a[3] ^= 1;
    assert_eq!(sk.open(&a, sealed), Err(CryptoError::Integrity));
}

#[test]
fn gcm_round_trip_and_tamper() {
    let rng = SystemRandom::new();
    for bits in [128u16, 256] {
        let encr = Encr::AesGcm16 { key_bits: bits };
        let key = vec![0x42; encr.keymat_len()];
        let sk = SkCipher::new(encr, &key, None).unwrap();
        let aad = b"IKE header | SK generic header".to_vec();
        for len in [0usize, 1, 15, 16, 100] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = sk.seal(&aad, &pt, 7, &rng).unwrap();
            assert_eq!(sealed.len(), sk.sealed_len(len));
            assert_eq!(sk.open(&aad, &sealed).unwrap(), pt);
            tamper_each_region(&sk, &aad, &sealed);
        }
        // Different counters give different ciphertexts.
        let a = sk.seal(&aad, b"x", 1, &rng).unwrap();
        let b = sk.seal(&aad, b"x", 2, &rng).unwrap();
        assert_ne!(a[8..], b[8..]);
        // Another key fails.
        let other = SkCipher::new(encr, &vec![0x43; encr.keymat_len()], None).unwrap();
        assert_eq!(other.open(&aad, &a), Err(CryptoError::Integrity));
        assert_eq!(sk.open(&aad, &a[..24]), Err(CryptoError::Truncated));
        assert_eq!(sk.open(&aad, &[]), Err(CryptoError::Truncated));
    }
}

#[test]
fn cbc_round_trip_tamper_and_layout() {
    let rng = SystemRandom::new();
    for (bits, integ) in [
        (128u16, Integ::HmacSha256_128),
        (192, Integ::HmacSha384_192),
        (256, Integ::HmacSha512_256),
    ] {
        let encr = Encr::AesCbc { key_bits: bits };
        let ekey = vec![0x11; encr.keymat_len()];
        let akey = vec![0x22; integ.key_len()];
        let sk = SkCipher::new(encr, &ekey, Some((integ, &akey))).unwrap();
        let aad = b"IKE header | SK generic header".to_vec();
        for len in [0usize, 1, 15, 16, 17, 100] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = sk.seal(&aad, &pt, 0, &rng).unwrap();
            assert_eq!(sealed.len(), sk.sealed_len(len));
            let ct_len = sealed.len() - 16 - integ.icv_len();
            assert_eq!(ct_len, (len + 1).div_ceil(16) * 16);
            // ICV = HMAC(aad | IV | ct) truncated, recomputed independently.
            let tag = ring::hmac::sign(
                &ring::hmac::Key::new(integ.hmac_alg(), &akey),
                &[aad.as_slice(), &sealed[..16 + ct_len]].concat(),
            );
            assert_eq!(&sealed[16 + ct_len..], &tag.as_ref()[..integ.icv_len()]);
            // Decrypting by hand shows zero pad bytes and the pad length.
            let mut ct = sealed[16..16 + ct_len].to_vec();
            sk::cbc_decrypt(bits, &ekey, &sealed[..16], &mut ct).unwrap();
            let pad = ct_len - len - 1;
            assert_eq!(&ct[..len], &pt[..]);
            assert!(ct[len..ct_len - 1].iter().all(|b| *b == 0));
            assert_eq!(usize::from(ct[ct_len - 1]), pad);
            assert_eq!(sk.open(&aad, &sealed).unwrap(), pt);
            tamper_each_region(&sk, &aad, &sealed);
        }
        let sealed = sk.seal(&aad, b"abc", 0, &rng).unwrap();
        assert_eq!(sk.open(&aad, &sealed[..40]), Err(CryptoError::Truncated));
    }
}

#[test]
fn cbc_bad_padding_after_valid_icv() {
    // A peer with the right keys but a pad length larger than the block.
    let encr = Encr::AesCbc { key_bits: 128 };
    let integ = Integ::HmacSha256_128;
    let (ekey, akey) = ([1u8; 16], [2u8; 32]);
    let sk = SkCipher::new(encr, &ekey, Some((integ, &akey))).unwrap();
    let iv = [3u8; 16];
    let mut block = [0u8; 16];
    block[15] = 16; // claims 16 pad bytes + the length byte = 17 > 16
    sk::cbc_encrypt(128, &ekey, &iv, &mut block).unwrap();
    let aad = b"hdr";
    let body = [iv.as_slice(), &block].concat();
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &akey),
        &[aad.as_slice(), &body].concat(),
    );
    let msg = [body.as_slice(), &tag.as_ref()[..16]].concat();
    assert_eq!(sk.open(aad, &msg), Err(CryptoError::Padding));
}

#[test]
fn sk_cipher_key_checks() {
    let gcm = Encr::AesGcm16 { key_bits: 128 };
    let cbc = Encr::AesCbc { key_bits: 128 };
    let i = Integ::HmacSha256_128;
    assert!(SkCipher::new(gcm, &[0; 16], None).is_err());
    assert!(matches!(
        SkCipher::new(gcm, &[0; 20], Some((i, &[0; 32]))),
        Err(CryptoError::Unsupported)
    ));
    assert!(matches!(
        SkCipher::new(cbc, &[0; 16], None),
        Err(CryptoError::Unsupported)
    ));
    assert!(matches!(
        SkCipher::new(cbc, &[0; 16], Some((i, &[0; 31]))),
        Err(CryptoError::BadKey)
    ));
    assert!(matches!(
        SkCipher::new(cbc, &[0; 24], Some((i, &[0; 32]))),
        Err(CryptoError::BadKey)
    ));
}

// ---- Key derivation (values from an independent Python prf+) ----

const NI: std::ops::Range<u8> = 0x10..0x30;
const NR: std::ops::Range<u8> = 0x40..0x60;
const SPI_I: u64 = 0x0102_0304_0506_0708;
const SPI_R: u64 = 0x1112_1314_1516_1718;

fn nonces() -> (Vec<u8>, Vec<u8>) {
    (NI.collect(), NR.collect())
}

fn gcm_suite() -> IkeSuite {
    IkeSuite {
        encr: Encr::AesGcm16 { key_bits: 256 },
        integ: None,
        prf: Prf::HmacSha256,
        group: Group::Curve25519,
    }
}

#[test]
fn ike_keys_gcm_sha256() {
    let (ni, nr) = nonces();
    let k = gcm_suite()
        .derive(&ni, &nr, &[0x77; 32], SPI_I, SPI_R)
        .unwrap();
    assert_eq!(
        to_hex(&k.sk_d),
        "7b610d38f01c5639dba609156dc534204358c71f25a10c726a335f0b92b109ed"
    );
    assert!(k.sk_ai.is_empty() && k.sk_ar.is_empty());
    assert_eq!(
        to_hex(&k.sk_ei),
        "b1fc88f3830ceeceece09e32c02cca193667f0c24a446f46a693f54e89f49fad80b67d1d"
    );
    assert_eq!(
        to_hex(&k.sk_er),
        "e20367b85f23ddd46552fb0eb50081fe3c10c19f049e78a06f1aea470e99c70279006ebd"
    );
    assert_eq!(
        to_hex(&k.sk_pi),
        "b232080f7259ac331b50d12f874a04fc134ef6cdef0d4a2b9a342c2a31a03e85"
    );
    assert_eq!(
        to_hex(&k.sk_pr),
        "30a2e2ce8b709c62132a384437340abfe02d458287038b127d661143fdde91ea"
    );
}

#[test]
fn ike_keys_cbc_sha384() {
    let (ni, nr) = nonces();
    let suite = IkeSuite {
        encr: Encr::AesCbc { key_bits: 128 },
        integ: Some(Integ::HmacSha256_128),
        prf: Prf::HmacSha384,
        group: Group::Ecp256,
    };
    let k = suite.derive(&ni, &nr, &[0x77; 32], SPI_I, SPI_R).unwrap();
    assert_eq!(
        to_hex(&k.sk_d),
        "27e5cbc17a9c9af6d1f0b268680c06ea5ffe3a59092114d83468d6e2488da184\
         002bcb7b051c199d3966217f71d1cd9e"
    );
    assert_eq!(
        to_hex(&k.sk_ai),
        "6ad1e67a4c101d37e2d09dfed695a850aa8cf0aca55767962ebdbf53167b5bb7"
    );
    assert_eq!(
        to_hex(&k.sk_ar),
        "e1f84bebbdf7ca1ad5f30f3f9fd35b75cac4b700bde7d7c478dbf92a9480e904"
    );
    assert_eq!(to_hex(&k.sk_ei), "9e69c4f74149482582ea769c5d75a35e");
    assert_eq!(to_hex(&k.sk_er), "8bb8698127f3a0ce5e34b94cd213ae9e");
    assert_eq!(
        to_hex(&k.sk_pr),
        "aa504f5bf8d9c71b6011a82e72a626c11e44891e5590234a77a298fee584980f\
         d6261973ac0a0ebcb553c102bbf02e79"
    );
    // The ciphers pair up: what the initiator seals the responder opens.
    let (i_to_r, r_to_i) = suite.ciphers(&k).unwrap();
    let rng = SystemRandom::new();
    let m = i_to_r
        .seal(b"aad", b"IDi AUTH SA TSi TSr", 0, &rng)
        .unwrap();
    let (peer_i_to_r, _) = suite.ciphers(&k).unwrap();
    assert_eq!(
        peer_i_to_r.open(b"aad", &m).unwrap(),
        b"IDi AUTH SA TSi TSr"
    );
    assert_eq!(r_to_i.open(b"aad", &m), Err(CryptoError::Integrity));
}

#[test]
fn ike_rekey_uses_old_prf() {
    let (ni, nr) = nonces();
    let old = gcm_suite()
        .derive(&ni, &nr, &[0x77; 32], SPI_I, SPI_R)
        .unwrap();
    let new = IkeSuite {
        prf: Prf::HmacSha512,
        ..gcm_suite()
    };
    let k = new
        .derive_rekey(
            Prf::HmacSha256,
            &old.sk_d,
            &ni,
            &nr,
            &[0x77; 32],
            SPI_I,
            SPI_R,
        )
        .unwrap();
    assert_eq!(
        to_hex(&k.sk_d),
        "45082a02a3ab8e3adeee9bb9bd0761cf0b272c9259510c80fac2596ee1563a91\
         7ca65505d8d2dc31e6e62a7fb161dae525ace685abe641408c313c82f8249917"
    );
    assert_eq!(
        to_hex(&k.sk_pr),
        "59ecf71a72d2f711ef59a7de383ec0c36084e644b14037b18787c8a7e23fed5a\
         3d32357b31aa47ff94aae829764a0d60c0e585c30bbc2ae920ed42a27ec2ecef"
    );
}

#[test]
fn suite_integrity_rules() {
    let (ni, nr) = nonces();
    let bad = IkeSuite {
        integ: Some(Integ::HmacSha256_128),
        ..gcm_suite()
    };
    assert!(matches!(
        bad.derive(&ni, &nr, &[1; 32], 1, 2),
        Err(CryptoError::Unsupported)
    ));
    let esp = EspSuite {
        encr: Encr::AesCbc { key_bits: 128 },
        integ: None,
        esn: false,
    };
    assert!(esp
        .derive(Prf::HmacSha256, &[0; 32], None, &ni, &nr)
        .is_err());
}

#[test]
fn esp_keymat() {
    let (ni, nr) = nonces();
    let ike = gcm_suite()
        .derive(&ni, &nr, &[0x77; 32], SPI_I, SPI_R)
        .unwrap();
    let gcm = EspSuite {
        encr: Encr::AesGcm16 { key_bits: 128 },
        integ: None,
        esn: true,
    };
    let (i2r, r2i) = gcm
        .derive(Prf::HmacSha256, &ike.sk_d, None, &ni, &nr)
        .unwrap();
    assert_eq!(
        to_hex(&i2r.encr),
        "bcedeeac13c1d08b341d0e015de7e7c7631f1cc6"
    );
    assert_eq!(
        to_hex(&r2i.encr),
        "b7eea7f4d228acf01d31e6a516fc2f4225ff43b1"
    );
    assert!(i2r.integ.is_empty() && r2i.integ.is_empty());
    let cbc = EspSuite {
        encr: Encr::AesCbc { key_bits: 256 },
        integ: Some(Integ::HmacSha512_256),
        esn: false,
    };
    let (i2r, r2i) = cbc
        .derive(Prf::HmacSha256, &ike.sk_d, Some(&[0x77; 32]), &ni, &nr)
        .unwrap();
    assert_eq!(
        to_hex(&i2r.encr),
        "1d676c07e383b3e2a3eb9aee825be8293991057761a02426ec098b1fda5ca356"
    );
    assert_eq!(
        to_hex(&i2r.integ),
        "faa51656c4fec000da28c8f2ad2a166894960d158ae47f01ed76c7d76465d10d\
         92b8842c0168a0e1f0b67d3240a6d682b2ed75ff779c4057ac5a4544dd2dd998"
    );
    assert_eq!(
        to_hex(&r2i.encr),
        "72b0f702f70d9f309fafbc9bec4652df2b39480529fa4def88df31c1713978f2"
    );
    assert_eq!(
        to_hex(&r2i.integ),
        "3bb4ff8d2424fa8743ea977be5920194cf0a825f9b20da5b77b2e5ac1824cfd9\
         8584bf2256e60893ae0d3e290abd08f270cb7b065e557a646ff847182334e3a7"
    );
}

// ---- NAT detection and PSK AUTH ----

#[test]
fn nat_detection_value() {
    let addr = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 500);
    assert_eq!(
        to_hex(&nat_detection_hash(SPI_I, SPI_R, addr)),
        "8429908900990775f2037b616b593bc8a8495259"
    );
    let other = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 4500);
    assert_ne!(
        nat_detection_hash(SPI_I, SPI_R, addr),
        nat_detection_hash(SPI_I, SPI_R, other)
    );
}

#[test]
fn psk_auth_value_and_verify() {
    let p = Prf::HmacSha256;
    let octets = signed_octets(
        p,
        b"first message bytes",
        b"peer nonce",
        &[1; 32],
        b"\x02\x00\x00\x00gw.example.net",
    );
    assert_eq!(
        to_hex(&octets),
        "6669727374206d65737361676520627974657370656572206e6f6e63657fc6ba\
         ec94acd7db1749462112fe62a878e7749a6c99ce8dc24b26cd51ce8fd7"
    );
    let auth = psk_auth(p, b"secret", &octets);
    assert_eq!(
        to_hex(&auth),
        "e17f0ac8c570fd42ea8e6a0e5608f05aa9fd1a7bf9e4e7c3591334adcb7912dd"
    );
    assert!(psk_verify(p, b"secret", &octets, &auth));
    assert!(!psk_verify(p, b"Secret", &octets, &auth));
    assert!(!psk_verify(p, b"secret", &octets[1..], &auth));
    assert!(!psk_verify(p, b"secret", &octets, &auth[..16]));
    assert!(!psk_verify(p, b"secret", &octets, &[]));
}

// ---- Wireshark key logs ----

#[test]
fn keylog_lines() {
    let (ni, nr) = nonces();
    let keys = gcm_suite()
        .derive(&ni, &nr, &[0x77; 32], SPI_I, SPI_R)
        .unwrap();
    assert_eq!(
        ikev2_uat_line(SPI_I, SPI_R, &gcm_suite(), &keys),
        "0102030405060708,1112131415161718,\
         b1fc88f3830ceeceece09e32c02cca193667f0c24a446f46a693f54e89f49fad80b67d1d,\
         e20367b85f23ddd46552fb0eb50081fe3c10c19f049e78a06f1aea470e99c70279006ebd,\
         \"AES-GCM-256 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\""
    );
    let cbc = IkeSuite {
        encr: Encr::AesCbc { key_bits: 128 },
        integ: Some(Integ::HmacSha256_128),
        prf: Prf::HmacSha384,
        group: Group::Ecp256,
    };
    let k = cbc.derive(&ni, &nr, &[0x77; 32], SPI_I, SPI_R).unwrap();
    assert_eq!(
        ikev2_uat_line(SPI_I, SPI_R, &cbc, &k),
        "0102030405060708,1112131415161718,\
         9e69c4f74149482582ea769c5d75a35e,8bb8698127f3a0ce5e34b94cd213ae9e,\
         \"AES-CBC-128 [RFC3602]\",\
         6ad1e67a4c101d37e2d09dfed695a850aa8cf0aca55767962ebdbf53167b5bb7,\
         e1f84bebbdf7ca1ad5f30f3f9fd35b75cac4b700bde7d7c478dbf92a9480e904,\
         \"HMAC_SHA2_256_128 [RFC4868]\""
    );
    let gcm = EspSuite {
        encr: Encr::AesGcm16 { key_bits: 128 },
        integ: None,
        esn: false,
    };
    let (i2r, _) = gcm
        .derive(Prf::HmacSha256, &keys.sk_d, None, &ni, &nr)
        .unwrap();
    let src = Ipv4Addr::new(198, 51, 100, 10);
    let dst = Ipv4Addr::new(203, 0, 113, 5);
    assert_eq!(
        esp_uat_line(src, dst, 0xc3ad_a079, &gcm, &i2r),
        "\"IPv4\",\"198.51.100.10\",\"203.0.113.5\",\"0xc3ada079\",\
         \"AES-GCM with 16 octet ICV [RFC4106]\",\
         \"0xbcedeeac13c1d08b341d0e015de7e7c7631f1cc6\",\"NULL\",\"\""
    );
    let cbc = EspSuite {
        encr: Encr::AesCbc { key_bits: 128 },
        integ: Some(Integ::HmacSha256_128),
        esn: false,
    };
    let keys = EspKeys {
        encr: vec![0xab; 16],
        integ: vec![0xcd; 32],
    };
    assert_eq!(
        esp_uat_line(src, dst, 0x100, &cbc, &keys),
        format!(
            "\"IPv4\",\"198.51.100.10\",\"203.0.113.5\",\"0x00000100\",\"AES-CBC [RFC3602]\",\
             \"0x{}\",\"HMAC-SHA-256-128 [RFC4868]\",\"0x{}\"",
            "ab".repeat(16),
            "cd".repeat(32)
        )
    );
}
