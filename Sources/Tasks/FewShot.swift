// Few-shot sampler (METHODS §4.5): for (task, k, seed), a Philox Fisher–Yates permutation of the
// raw training rows (WSC: its label-1 subset), first k kept. The permutation does not depend on k,
// so the k = 8 sample is a prefix of the k = 16 and k = 32 samples of the same seed. Written as a
// manifest that every method reads, so samples are identical across methods.
import Foundation
import Support

public struct Manifest: Codable, Equatable, Sendable {
    public var task: String
    public var k: Int
    public var seed: Int
    public var trainFile: String
    public var trainSha256: String
    public var trainRows: Int
    public var subset: Bool
    public var sampler: String
    public var indices: [Int]

    enum CodingKeys: String, CodingKey {
        case task, k, seed, subset, sampler, indices
        case trainFile = "train_file", trainSha256 = "train_sha256", trainRows = "train_rows"
    }

    public static let samplerID = "philox4x32-10 fisher-yates v1 (key: seed, stream: fewshot/<task>)"

    public var fileName: String {
        Manifest.fileName(task: task, k: k, seed: seed, sampler: sampler == FewShotSampler.balancedSamplerID ? .balanced : .uniform)
    }

    /// Stable bytes: sorted keys, two-space indentation, indices on one line.
    public func encoded() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        var text = String(decoding: try enc.encode(self), as: UTF8.self)
        // Keep the index list on one line for readable diffs.
        if let r = text.range(of: "\"indices\" : [") {
            let close = text[r.upperBound...].firstIndex(of: "]")!
            let inner = text[r.upperBound..<close].split(whereSeparator: { $0 == "," || $0 == "\n" || $0 == " " }).joined(separator: ", ")
            text.replaceSubrange(r.lowerBound...close, with: "\"indices\" : [\(inner)]")
        }
        return Data((text + "\n").utf8)
    }

    public static func load(path: String) throws -> Manifest {
        guard let d = FileManager.default.contents(atPath: path) else { throw TaskError(file: path, detail: "cannot read manifest") }
        do { return try JSONDecoder().decode(Manifest.self, from: d) } catch {
            throw TaskError(file: path, detail: "not a manifest: \(error)")
        }
    }

    /// Refuses a manifest whose training file differs from the one it was drawn from, or that is
    /// not the sample of the cell reading it: another task, k, seed or sampler (a file copied
    /// under another cell's name trained on 16 rows as "k = 8"), a list that is not k distinct
    /// rows of the sampling pool (`FewShotSampler.pool`: WSC's label-1 rows).
    /// - Parameters: `k`, `seed` (the sample seed) and `sampler` are the run's.
    /// - Throws: `TaskError` naming the manifest and what does not match.
    public func verify(against data: TaskData, path: String, k expectedK: Int, seed expectedSeed: Int, sampler expectedSampler: SamplerKind) throws {
        guard data.sha256 == trainSha256 else {
            throw TaskError(file: path, detail: "train-file hash mismatch: manifest drew from \(trainFile) sha256 \(trainSha256.prefix(12))…, but \(data.relativePath) has \(data.sha256.prefix(12))…; re-run `promptrepro sample` or restore the pinned data")
        }
        let samplerID = expectedSampler == .balanced ? FewShotSampler.balancedSamplerID : Manifest.samplerID
        for (field, have, want) in [("task", task, data.definition.task), ("k", "\(k)", "\(expectedK)"), ("seed", "\(seed)", "\(expectedSeed)"),
                                    ("sampler", sampler, samplerID)] where have != want {
            throw TaskError(file: path, detail: "\(field) is \(have), but the run reading it needs \(want): not this cell's sample (regenerate it with `promptrepro sample`)")
        }
        if let bad = indices.first(where: { $0 < 0 || $0 >= data.rows.count }) {
            throw TaskError(file: path, detail: "index \(bad) outside the \(data.rows.count) training rows")
        }
        guard indices.count == k else { throw TaskError(file: path, detail: "\(indices.count) indices for k = \(k)") }
        guard Set(indices).count == indices.count else { throw TaskError(file: path, detail: "an index is listed twice: a sample is k distinct rows") }
        let pool = Set(FewShotSampler.pool(data))
        if let bad = indices.first(where: { !pool.contains($0) }) {
            throw TaskError(file: path, detail: "row \(bad) is not one the task samples from (\(data.definition.task)'s pool: \(pool.count) of \(data.rows.count) rows)")
        }
    }
}

public enum FewShotSampler {
    /// Rows eligible for sampling (WSC: label-1 only, as DPT trains on).
    public static func pool(_ data: TaskData) -> [Int] {
        if data.definition.trainFilter == "label_true" {
            return data.rows.indices.filter { i in
                guard let l = data.rows[i].fields["label"], let lv = LabelValue(json: l) else { return false }
                return lv == .bool(true) || lv == .int(1)
            }
        }
        return Array(data.rows.indices)
    }

    /// The eligible rows (`pool`) in the order of the seed's Philox Fisher–Yates permutation: every
    /// sampler and the dev sets walk this one order.
    public static func permutedPool(_ data: TaskData, seed: Int) -> [Int] {
        let pool = pool(data)
        var stream = PhiloxStream(RNGKey(seed: UInt64(seed)).derive("fewshot/\(data.definition.task)"))
        return stream.permutation(pool.count).map { pool[$0] }
    }

    public static func sample(_ data: TaskData, k: Int, seed: Int) throws -> Manifest {
        let order = permutedPool(data, seed: seed)
        guard k > 0, k <= order.count else {
            throw TaskError(file: data.path, detail: "cannot draw k = \(k) from \(order.count) eligible training rows")
        }
        return Manifest(task: data.definition.task, k: k, seed: seed, trainFile: data.relativePath, trainSha256: data.sha256,
                        trainRows: data.rows.count, subset: data.isSubset, sampler: Manifest.samplerID,
                        indices: Array(order.prefix(k)))
    }
}
