// DroverIdentity: the built-in certificate authority.
//
// One job: make and check X.509 identities for devices and for Drover's own TLS listeners. It issues certificates
// from public keys (`CertificateAuthority.issueDeviceCertificate`, `issueServerCertificate`) and from PKCS#10
// requests (`issueFromCSR`), generates device key pairs (`DeviceKeyPair`), reads the facts the registry stores
// (`CertificateInfo`), and verifies client certificate chains for the mutual-TLS listener
// (`verifyClientCertificate`, `isSigned`).
//
// Invariants:
// - Everything is a value type and `Sendable`; nothing here does I/O, keeps state, or reads the clock. Time is passed
//   in as `now`, so issuing and verifying are deterministic apart from keys and serial numbers.
// - A `CertificateAuthority` always holds a CA certificate together with the private key that matches it.
// - Every certificate issued chains to the authority's certificate under RFC 5280, and never outlives it.
// - Refusals to issue are thrown `IdentityError`s that say what to fix; a client certificate that does not verify
//   is a returned `CertificateVerificationFailure`, because refusing a device is an outcome, not a failure.
// - No ASN.1 is written by hand: encoding is swift-certificates' and swift-crypto's.
//
// The registry (which certificates exist, their status, the things they are attached to) is not here: it is a
// feature module that uses this one.
