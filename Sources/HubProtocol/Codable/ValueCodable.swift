// JSONValue and MessagePackValue as Codable, so that typed hub arguments can hold "any value" fields. Through
// this module's own encoders and decoders they pass through unchanged (the coders special-case them); through
// other coders (Foundation's JSONEncoder, …) they use the generic forms below.

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        if let array = try? decoder.unkeyedContainer() {
            var container = array
            var elements: [JSONValue] = []
            while !container.isAtEnd { elements.append(try container.decode(JSONValue.self)) }
            self = .array(elements)
            return
        }
        if let keyed = try? decoder.container(keyedBy: AnyKey.self) {
            var object = JSONObject()
            for key in keyed.allKeys { object[key.stringValue] = try keyed.decode(JSONValue.self, forKey: key) }
            self = .object(object)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() {
            self = .null
        } else if let value = try? single.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? single.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? single.decode(UInt64.self) {
            self = .uint(value)
        } else if let value = try? single.decode(Double.self) {
            self = .double(value)
        } else {
            self = .string(try single.decode(String.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var single = encoder.singleValueContainer()
            try single.encodeNil()
        case .bool(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .int(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .uint(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .double(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .string(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .array(let elements):
            var container = encoder.unkeyedContainer()
            for element in elements { try container.encode(element) }
        case .object(let object):
            var container = encoder.container(keyedBy: AnyKey.self)
            for (key, value) in object { try container.encode(value, forKey: AnyKey(key)) }
        }
    }
}

extension MessagePackValue: Codable {
    public init(from decoder: any Decoder) throws {
        self = MessagePackValue(try JSONValue(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .float(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .binary(let bytes):
            var single = encoder.singleValueContainer()
            try single.encode(bytes)
        case .array(let elements):
            var container = encoder.unkeyedContainer()
            for element in elements { try container.encode(element) }
        case .map(let pairs):
            var container = encoder.container(keyedBy: AnyKey.self)
            for pair in pairs {
                guard case .string(let key) = pair.key else {
                    throw EncodingError.invalidValue(
                        self,
                        EncodingError.Context(codingPath: encoder.codingPath, debugDescription: "map key not a string"))
                }
                try container.encode(pair.value, forKey: AnyKey(key))
            }
        case .ext:
            throw EncodingError.invalidValue(
                self,
                EncodingError.Context(codingPath: encoder.codingPath, debugDescription: "extension values"))
        default:
            // nil, bool, integers, double, string: same as JSON.
            let json: JSONValue
            do { json = try JSONValue(self) } catch {
                throw EncodingError.invalidValue(
                    self, EncodingError.Context(codingPath: encoder.codingPath, debugDescription: "\(error)"))
            }
            try json.encode(to: encoder)
        }
    }
}

struct AnyKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(_ string: String) {
        stringValue = string
        intValue = nil
    }
    init?(stringValue: String) { self.init(stringValue) }
    init?(intValue: Int) {
        stringValue = String(intValue)
        self.intValue = intValue
    }
}
