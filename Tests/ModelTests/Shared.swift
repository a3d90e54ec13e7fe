import Foundation
import TestSupport
import XCTest

func readJSON(_ path: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
}

func doubles(_ any: Any?) -> [Double]? {
    guard let a = any as? [Any] else { return nil }
    var out: [Double] = []
    for v in a {
        if let d = v as? Double { out.append(d) } else if let i = v as? Int { out.append(Double(i)) } else if let n = v as? NSNumber { out.append(n.doubleValue) } else { return nil }
    }
    return out
}
