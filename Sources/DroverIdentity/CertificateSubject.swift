import SwiftASN1
import X509

/// The few subject attributes that device and server certificates carry, for callers that do not want to build a
/// `DistinguishedName` themselves.
///
/// Attributes are written in the conventional order, country first and common name last, so that the RFC 4514 string
/// reads `CN=...,O=...,C=...` like OpenSSL's and AWS IoT's.
public struct CertificateSubject: Hashable, Sendable {
    public var commonName: String
    public var organization: String?
    public var organizationalUnit: String?
    /// A two-letter ISO 3166 code; X.509 requires it as a PrintableString.
    public var country: String?
    public var stateOrProvince: String?
    public var locality: String?

    public init(
        commonName: String,
        organization: String? = nil,
        organizationalUnit: String? = nil,
        country: String? = nil,
        stateOrProvince: String? = nil,
        locality: String? = nil
    ) {
        self.commonName = commonName
        self.organization = organization
        self.organizationalUnit = organizationalUnit
        self.country = country
        self.stateOrProvince = stateOrProvince
        self.locality = locality
    }

    /// The subject as an X.509 name. Throws ``IdentityError`` when the country is not two letters.
    public func distinguishedName() throws -> DistinguishedName {
        typealias Attribute = RelativeDistinguishedName.Attribute
        typealias Types = ASN1ObjectIdentifier.RDNAttributeType
        var attributes: [Attribute] = []
        if let country {
            guard country.utf8.count == 2, country.allSatisfy({ $0.isASCII && $0.isLetter }) else {
                throw IdentityError(
                    .invalidSubject,
                    "the country must be a two-letter code such as US, not '\(country)'"
                )
            }
            attributes.append(try Attribute(type: Types.countryName, printableString: country))
        }
        if let stateOrProvince {
            attributes.append(Attribute(type: Types.stateOrProvinceName, utf8String: stateOrProvince))
        }
        if let locality {
            attributes.append(Attribute(type: Types.localityName, utf8String: locality))
        }
        if let organization {
            attributes.append(Attribute(type: Types.organizationName, utf8String: organization))
        }
        if let organizationalUnit {
            attributes.append(Attribute(type: Types.organizationalUnitName, utf8String: organizationalUnit))
        }
        attributes.append(Attribute(type: Types.commonName, utf8String: self.commonName))
        return try DistinguishedName(attributes)
    }
}

extension DistinguishedName {
    /// The first common name, which is what AWS IoT and most tools show as a certificate's name.
    public var firstCommonName: String? {
        for rdn in self {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return String(attribute.value)
            }
        }
        return nil
    }
}
