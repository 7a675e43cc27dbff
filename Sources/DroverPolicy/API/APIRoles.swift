/// The ready-made access key policies of `drover keys create --role`.
public enum APIRole: String, CaseIterable, Sendable {
    /// Everything, access keys and CAs included: the key made at first start.
    case admin
    /// Runs the fleet (things, groups, types, certificates, policies, shadows, publishing,
    /// fleet configuration, the audit log) but cannot manage access keys or CAs.
    case `operator` = "operator"
    /// Brings devices on: creates things and certificates, attaches existing policies and
    /// groups. It cannot write policies, CAs or access keys, and reads only what it needs.
    case provisioner
    /// Reads everything but secrets; changes nothing.
    case readOnly = "read-only"

    /// The role's policy document.
    public var document: String {
        switch self {
        case .admin:
            #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
        case .operator:
            #"""
            {"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["iot:*","iotdata:*","drover:*"],"Resource":"*"},
            {"Effect":"Deny","Action":["drover:CreateAccessKey","drover:RevokeAccessKey","iot:RegisterCACertificate","iot:UpdateCACertificate","iot:DeleteCACertificate"],"Resource":"*"}]}
            """#
        case .provisioner:
            #"""
            {"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["iot:CreateThing","iot:DescribeThing","iot:UpdateThing","iot:CreateKeysAndCertificate","iot:CreateCertificateFromCsr","iot:RegisterCertificate","iot:RegisterCertificateWithoutCA","iot:DescribeCertificate","iot:UpdateCertificate","iot:AttachThingPrincipal","iot:ListThingPrincipals","iot:AttachPolicy","iot:ListAttachedPolicies","iot:AddThingToThingGroup","iot:DescribeThingGroup","iot:DescribeThingType","iot:GetPolicy","iot:ListPolicies","iot:DescribeEndpoint"],"Resource":"*"}]}
            """#
        case .readOnly:
            #"""
            {"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["iot:Describe*","iot:List*","iot:Get*","iotdata:Get*","iotdata:List*","drover:List*","drover:Get*","drover:QueryAudit"],"Resource":"*"},
            {"Effect":"Deny","Action":["drover:ListAccessKeys"],"Resource":"*"}]}
            """#
        }
    }
}
