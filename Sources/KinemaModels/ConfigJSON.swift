import Foundation
import KinemaCore

/// A model's `config.json`, read with typed accessors whose errors name the file and the key.
struct ConfigJSON {
    let values: [String: Any]
    let origin: String

    init(_ data: Data, origin: String) throws {
        guard let object = try? JSONSerialization.jsonObject(with: data), let dict = object as? [String: Any] else {
            throw KinemaError.badFile(path: origin, location: nil, reason: "config.json is not a JSON object")
        }
        values = dict
        self.origin = origin
    }

    /// A nested object of another config (e.g. CLIPConfig's `vision_config`).
    init(values: [String: Any], origin: String) {
        self.values = values
        self.origin = origin
    }

    subscript(_ key: String) -> Any? { values[key] }

    /// An integer value, nil when absent or null; a non-integer is an error.
    func int(_ key: String) throws -> Int? {
        guard let value = values[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, let exact = Int(exactly: number.doubleValue) else {
            throw KinemaError.badFile(path: origin, location: key, reason: "expected an integer, found \(value)")
        }
        return exact
    }

    func required(_ key: String) throws -> Int {
        if let value = try int(key) { return value }
        throw KinemaError.badFile(path: origin, location: key, reason: "missing required key")
    }
}
