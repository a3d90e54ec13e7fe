// Published numbers (Baselines/published/*.csv), read at report time and loaded into the store.
import Foundation
import Support
import Store

public struct PublishedValue: Equatable {
    public var paper, table, model, method, column, value, unit, source: String
    public var number: Double? { Double(value) }
}

public enum Published {
    public static func load(directory: String) throws -> [PublishedValue] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".csv") }.sorted()
        guard !files.isEmpty else { throw StoreError("\(directory): no published CSV files") }
        var out: [PublishedValue] = []
        for f in files {
            let path = "\(directory)/\(f)"
            let lines = pyLines(try String(contentsOfFile: path, encoding: .utf8)).filter { !$0.isEmpty }
            guard lines.first == "paper,table,model,method,column,value,unit,source" else {
                throw StoreError("\(path): line 1 must be the header paper,table,model,method,column,value,unit,source")
            }
            for (i, l) in lines.dropFirst().enumerated() {
                let c = l.split(separator: ",", maxSplits: 7, omittingEmptySubsequences: false).map(String.init)
                guard c.count == 8 else { throw StoreError("\(path): line \(i + 2): expected 8 fields") }
                out.append(PublishedValue(paper: c[0], table: c[1], model: c[2], method: c[3], column: c[4], value: c[5], unit: c[6], source: c[7]))
            }
        }
        return out
    }
}
