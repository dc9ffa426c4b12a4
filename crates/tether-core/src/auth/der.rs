//! Just enough DER to tell which key a PEM `PUBLIC KEY` block holds: the algorithm (and curve)
//! of its SubjectPublicKeyInfo decides the JWT algorithm, never a token's header.

use super::error::KeyError;

/// The public key inside a SubjectPublicKeyInfo, by type.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PublicKey<'a> {
    /// A PKCS#1 `RSAPublicKey`.
    Rsa(&'a [u8]),
    /// A SEC1 point on P-256.
    P256(&'a [u8]),
    /// A SEC1 point on P-384.
    P384(&'a [u8]),
    /// The 32 bytes of an Ed25519 key.
    Ed25519(&'a [u8]),
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;

// 1.2.840.113549.1.1.1 rsaEncryption
const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
// 1.2.840.113549.1.1.10 RSASSA-PSS (key restricted to PSS: not RS256)
const RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
// 1.2.840.10045.2.1 id-ecPublicKey
const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
// 1.2.840.10045.3.1.7 prime256v1
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
// 1.3.132.0.34 secp384r1
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
// 1.3.132.0.10 secp256k1
const SECP256K1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];
// 1.3.101.112 Ed25519, 1.3.101.113 Ed448, 1.3.101.110/111 X25519/X448
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const ED448: &[u8] = &[0x2b, 0x65, 0x71];
const X25519: &[u8] = &[0x2b, 0x65, 0x6e];
const X448: &[u8] = &[0x2b, 0x65, 0x6f];
// 1.2.840.10040.4.1 DSA
const DSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];

/// Splits one DER element off `input`: its tag, its content and what follows.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), KeyError> {
    match element(input) {
        Some((t, content, rest)) if t == tag => Ok((content, rest)),
        _ => Err(KeyError::Malformed("not a DER SubjectPublicKeyInfo")),
    }
}

/// Reads a DER SubjectPublicKeyInfo (the content of a PEM `PUBLIC KEY` block).
pub(super) fn public_key(der: &[u8]) -> Result<PublicKey<'_>, KeyError> {
    let (spki, trailing) = expect(der, SEQUENCE)?;
    if !trailing.is_empty() {
        return Err(KeyError::Malformed("bytes after the SubjectPublicKeyInfo"));
    }
    let (algorithm, rest) = expect(spki, SEQUENCE)?;
    let (bits, rest) = expect(rest, BIT_STRING)?;
    if !rest.is_empty() {
        return Err(KeyError::Malformed("bytes after the public key"));
    }
    let key = match bits.split_first() {
        Some((0, key)) if !key.is_empty() => key,
        _ => {
            return Err(KeyError::Malformed(
                "the public key bit string is empty or padded",
            ));
        }
    };
    let (oid, params) = expect(algorithm, OID)?;
    match oid {
        RSA => Ok(PublicKey::Rsa(key)),
        EC => {
            let (curve, _) = expect(params, OID)
                .map_err(|_| KeyError::Malformed("an EC key without a named curve"))?;
            match curve {
                P256 => Ok(PublicKey::P256(key)),
                P384 => Ok(PublicKey::P384(key)),
                SECP256K1 => Err(KeyError::Unsupported("EC secp256k1")),
                _ => Err(KeyError::Unsupported("EC on an unsupported curve")),
            }
        }
        ED25519 => Ok(PublicKey::Ed25519(key)),
        ED448 => Err(KeyError::Unsupported("Ed448")),
        RSA_PSS => Err(KeyError::Unsupported("RSASSA-PSS-only RSA")),
        X25519 | X448 => Err(KeyError::Unsupported(
            "X25519/X448 (key agreement, not signing)",
        )),
        DSA => Err(KeyError::Unsupported("DSA")),
        _ => Err(KeyError::Unsupported("unknown")),
    }
}

/// The modulus length in bits of a PKCS#1 `RSAPublicKey` (`SEQUENCE { n INTEGER, e INTEGER }`).
pub(super) fn rsa_modulus_bits(pkcs1: &[u8]) -> Result<usize, KeyError> {
    let malformed = || KeyError::Malformed("not a PKCS#1 RSA public key");
    let (seq, trailing) = expect(pkcs1, SEQUENCE).map_err(|_| malformed())?;
    if !trailing.is_empty() {
        return Err(malformed());
    }
    let (n, rest) = expect(seq, INTEGER).map_err(|_| malformed())?;
    let (_e, rest) = expect(rest, INTEGER).map_err(|_| malformed())?;
    if !rest.is_empty() {
        return Err(malformed());
    }
    let n = match n.iter().position(|&b| b != 0) {
        Some(i) => &n[i..],
        None => return Err(malformed()),
    };
    Ok(n.len() * 8 - n[0].leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_reads_short_and_long_lengths() {
        assert_eq!(
            element(&[0x04, 0x01, 0xaa, 0xbb]),
            Some((4, &[0xaa][..], &[0xbb][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        assert_eq!(element(&long).map(|(_, c, _)| c.len()), Some(0x80));
        assert_eq!(
            element(&[0x04, 0x05, 0x00]),
            None,
            "content shorter than its length"
        );
        assert_eq!(element(&[0x04, 0x80]), None, "indefinite length");
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x00],
            &[0x30, 0x02, 0x30, 0x00],
            &[0xff; 40],
        ] {
            assert!(public_key(bad).is_err());
        }
        assert!(rsa_modulus_bits(&[0x30, 0x00]).is_err());
    }
}
