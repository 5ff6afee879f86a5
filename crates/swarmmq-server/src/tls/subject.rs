//! The subject common name (CN) of an X.509 certificate, read with a minimal DER
//! walker. Only used on certificates rustls has already verified; anything unexpected
//! yields `None` rather than an error, since the CN is an identity hint, not a check.

/// DER tags this walker needs.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0;
/// id-at-commonName, 2.5.4.3.
const CN_OID: &[u8] = &[0x55, 0x04, 0x03];
/// Longest CN returned (X.509's upper bound for commonName is 64 characters).
const MAX_CN_BYTES: usize = 256;

/// One DER element: tag, contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers never occur in the fields walked here
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

fn tagged(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, contents, rest) = element(input)?;
    (t == tag).then_some((contents, rest))
}

/// The first commonName of the certificate's subject, if it is a UTF-8 compatible string.
pub(crate) fn common_name(cert_der: &[u8]) -> Option<String> {
    let (cert, _) = tagged(cert_der, SEQUENCE)?;
    let (tbs, _) = tagged(cert, SEQUENCE)?;
    let mut fields = tbs;
    if fields.first() == Some(&VERSION) {
        fields = element(fields)?.2;
    }
    // serialNumber, signature, issuer, validity: skipped; then subject.
    for _ in 0..4 {
        fields = element(fields)?.2;
    }
    let (mut rdns, _) = tagged(fields, SEQUENCE)?;
    while !rdns.is_empty() {
        let (mut set, rest) = tagged(rdns, SET)?;
        rdns = rest;
        while !set.is_empty() {
            let (attr, rest) = tagged(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = tagged(attr, OID)?;
            if oid != CN_OID {
                continue;
            }
            let (tag, text, _) = element(value)?;
            // UTF8String, PrintableString, IA5String: all valid UTF-8 when well-formed.
            if !matches!(tag, 0x0c | 0x13 | 0x16) || text.len() > MAX_CN_BYTES {
                return None;
            }
            return std::str::from_utf8(text).ok().map(str::to_string);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_the_common_name_among_other_attributes() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "SwarmMQ dev");
        dn.push(rcgen::DnType::CommonName, "client-émile");
        let der = cert_with(dn);
        assert_eq!(common_name(&der).as_deref(), Some("client-émile"));
    }

    #[test]
    fn no_common_name_is_none() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "only an org");
        assert_eq!(common_name(&cert_with(dn)), None);
    }

    #[test]
    fn truncated_or_garbage_input_is_none() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "node");
        let der = cert_with(dn);
        for cut in [0, 1, 2, 10, der.len() / 2] {
            assert_eq!(common_name(&der[..cut]), None, "cut at {cut}");
        }
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(common_name(b"not der at all"), None);
    }
}
