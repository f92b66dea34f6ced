//! IANA numbers of IKEv2 as newtypes over the raw values.
//!
//! Every newtype holds any number: an unknown value is not a parse error
//! here, the protocol core decides what it means (RFC 7296 §2.5 asks to ignore
//! or reject depending on the field). `Display` prints the registry name
//! when known, else the number.

use core::fmt;

/// Defines a newtype over an integer with named associated constants.
macro_rules! codes {
    (
        $(#[$meta:meta])*
        $name:ident($int:ty) {
            $($konst:ident = $value:expr,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub $int);

        impl $name {
            $(
                #[doc = concat!("`", stringify!($konst), "` (", stringify!($value), ").")]
                pub const $konst: $name = $name($value);
            )*

            /// The registry name, when this codec knows the number.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($konst)),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}", self.0),
                }
            }
        }
    };
}

codes! {
    /// Exchange type of the header (RFC 7296 §3.1).
    ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
    }
}

codes! {
    /// Payload type, as named by a header's or a payload's next-payload field.
    PayloadType(u8) {
        NONE = 0,
        SA = 33,
        KE = 34,
        IDI = 35,
        IDR = 36,
        CERT = 37,
        CERTREQ = 38,
        AUTH = 39,
        NONCE = 40,
        NOTIFY = 41,
        DELETE = 42,
        VENDOR = 43,
        TSI = 44,
        TSR = 45,
        SK = 46,
        CP = 47,
        EAP = 48,
        SKF = 53,
    }
}

codes! {
    /// Security protocol of a proposal, notification or delete (RFC 7296 §3.3.1).
    ProtocolId(u8) {
        NONE = 0,
        IKE = 1,
        AH = 2,
        ESP = 3,
    }
}

codes! {
    /// Transform type (RFC 7296 §3.3.2).
    TransformType(u8) {
        ENCR = 1,
        PRF = 2,
        INTEG = 3,
        KE = 4,
        ESN = 5,
    }
}

impl TransformType {
    /// Older name of [`TransformType::KE`] (Diffie-Hellman group).
    pub const DH: TransformType = TransformType::KE;
}

codes! {
    /// Notify message type (RFC 7296 §3.10.1 and later RFCs).
    NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_IKE_SPI = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17,
        AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35,
        INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38,
        INVALID_SELECTORS = 39,
        TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44,
        INITIAL_CONTACT = 16384,
        SET_WINDOW_SIZE = 16385,
        ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387,
        NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389,
        COOKIE = 16390,
        USE_TRANSPORT_MODE = 16391,
        REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        MOBIKE_SUPPORTED = 16396,
        MULTIPLE_AUTH_SUPPORTED = 16404,
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        SIGNATURE_HASH_ALGORITHMS = 16431,
    }
}

impl NotifyType {
    /// First status type; everything below is an error (RFC 7296 §3.10.1).
    pub const FIRST_STATUS: u16 = 16384;

    /// True for error types (below 16384): an unknown one in a response
    /// means the request failed, an unknown status type is ignored.
    pub fn is_error(self) -> bool {
        self.0 < Self::FIRST_STATUS
    }
}

codes! {
    /// Identification type (RFC 7296 §3.5).
    IdType(u8) {
        IPV4_ADDR = 1,
        FQDN = 2,
        RFC822_ADDR = 3,
        IPV6_ADDR = 5,
        DER_ASN1_DN = 9,
        DER_ASN1_GN = 10,
        KEY_ID = 11,
    }
}

codes! {
    /// Authentication method (RFC 7296 §3.8, RFC 7427).
    AuthMethod(u8) {
        RSA_SIG = 1,
        SHARED_KEY_MIC = 2,
        DSS_SIG = 3,
        ECDSA_256 = 9,
        ECDSA_384 = 10,
        ECDSA_521 = 11,
        DIGITAL_SIGNATURE = 14,
    }
}

codes! {
    /// Certificate encoding of CERT and CERTREQ (RFC 7296 §3.6).
    CertEncoding(u8) {
        PKCS7_X509 = 1,
        X509_SIGNATURE = 4,
        CRL = 7,
        RAW_RSA_KEY = 11,
        HASH_URL_X509_CERT = 12,
        HASH_URL_X509_BUNDLE = 13,
    }
}

codes! {
    /// Traffic selector type (RFC 7296 §3.13.1).
    TsType(u8) {
        IPV4_ADDR_RANGE = 7,
        IPV6_ADDR_RANGE = 8,
    }
}

codes! {
    /// Configuration payload type (RFC 7296 §3.15).
    CfgType(u8) {
        CFG_REQUEST = 1,
        CFG_REPLY = 2,
        CFG_SET = 3,
        CFG_ACK = 4,
    }
}

/// Transform IDs per transform type and transform attribute types
/// (RFC 7296 §3.3.2, §3.3.5; IANA "IKEv2 Transform Type n" registries).
pub mod transform_id {
    /// ENCR: AES-CBC (RFC 3602), needs a key length attribute.
    pub const ENCR_AES_CBC: u16 = 12;
    /// ENCR: AES-GCM with an 8-byte ICV (RFC 4106).
    pub const ENCR_AES_GCM_8: u16 = 18;
    /// ENCR: AES-GCM with a 12-byte ICV (RFC 4106).
    pub const ENCR_AES_GCM_12: u16 = 19;
    /// ENCR: AES-GCM with a 16-byte ICV (RFC 4106), needs a key length attribute.
    pub const ENCR_AES_GCM_16: u16 = 20;
    /// ENCR: ChaCha20-Poly1305 (RFC 7634).
    pub const ENCR_CHACHA20_POLY1305: u16 = 28;
    /// PRF: HMAC-SHA1.
    pub const PRF_HMAC_SHA1: u16 = 2;
    /// PRF: HMAC-SHA2-256 (RFC 4868).
    pub const PRF_HMAC_SHA2_256: u16 = 5;
    /// PRF: HMAC-SHA2-384 (RFC 4868).
    pub const PRF_HMAC_SHA2_384: u16 = 6;
    /// PRF: HMAC-SHA2-512 (RFC 4868).
    pub const PRF_HMAC_SHA2_512: u16 = 7;
    /// INTEG: none (with AEAD ciphers).
    pub const AUTH_NONE: u16 = 0;
    /// INTEG: HMAC-SHA1-96.
    pub const AUTH_HMAC_SHA1_96: u16 = 2;
    /// INTEG: HMAC-SHA2-256-128 (RFC 4868).
    pub const AUTH_HMAC_SHA2_256_128: u16 = 12;
    /// INTEG: HMAC-SHA2-384-192 (RFC 4868).
    pub const AUTH_HMAC_SHA2_384_192: u16 = 13;
    /// INTEG: HMAC-SHA2-512-256 (RFC 4868).
    pub const AUTH_HMAC_SHA2_512_256: u16 = 14;
    /// KE: 2048-bit MODP group.
    pub const DH_MODP2048: u16 = 14;
    /// KE: NIST P-256 (RFC 5903).
    pub const DH_ECP256: u16 = 19;
    /// KE: NIST P-384 (RFC 5903).
    pub const DH_ECP384: u16 = 20;
    /// KE: Curve25519 (RFC 8031).
    pub const DH_CURVE25519: u16 = 31;
    /// ESN: no extended sequence numbers.
    pub const ESN_NO: u16 = 0;
    /// ESN: extended sequence numbers.
    pub const ESN_YES: u16 = 1;
    /// Attribute type: key length in bits (RFC 7296 §3.3.5), always TV format.
    pub const KEY_LENGTH: u16 = 14;
    /// Attribute format bit: set for TV (2-byte value), clear for TLV.
    pub const ATTR_TV: u16 = 0x8000;
}
