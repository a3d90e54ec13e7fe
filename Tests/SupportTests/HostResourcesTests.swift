import Foundation
@testable import Support
import TestSupport
import XCTest

/// `HostResources` on file trees laid out as Linux shows them (proc(5), cgroup-v2.rst,
/// cgroup-v1/cpu*.rst): the affinity mask, cgroup v2 `cpu.max` / `memory.max` in a container's
/// own namespace and on a host path with a tighter ancestor, cgroup v1 quotas, and "no limit".
/// Expected values worked by hand.
final class HostResourcesTests: XCTestCase {
    func tree(_ files: [String: String]) throws -> String {
        let root = tempDir("hostres")
        for (rel, text) in files {
            let path = (root as NSString).appendingPathComponent(rel)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        return root
    }

    func testCPUListCount() {
        XCTAssertEqual(HostResources.cpuListCount("0-7,64-71\n"), 16)
        XCTAssertEqual(HostResources.cpuListCount("\t1"), 1)
        XCTAssertEqual(HostResources.cpuListCount("0,2,4-5"), 4)
        XCTAssertNil(HostResources.cpuListCount(""))
        XCTAssertNil(HostResources.cpuListCount("3-1"))
        XCTAssertNil(HostResources.cpuListCount("a-b"))
    }

    func testAffinityMaskAndQuotasBoundTheCPUs() throws {
        // No files at all (not Linux, or /proc not mounted): the machine's count.
        let empty = try tree([:])
        defer { try? FileManager.default.removeItem(atPath: empty) }
        XCTAssertEqual(HostResources.cpus(machine: 8, root: empty), 8)
        XCTAssertEqual(HostResources.cpus(machine: 0, root: empty), 1)
        // `taskset -c 1`: one allowed CPU of two.
        let pinned = try tree(["proc/self/status": "Name:\tx\nCpus_allowed:\t2\nCpus_allowed_list:\t1\nMems_allowed_list:\t0\n",
                               "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"])
        defer { try? FileManager.default.removeItem(atPath: pinned) }
        XCTAssertEqual(HostResources.cpus(machine: 2, root: pinned), 1)
        // `docker --cpus=2.5` (cgroup v2, own namespace: "0::/"): ⌈250000 / 100000⌉ = 3 of 64.
        let docker = try tree(["proc/self/status": "Cpus_allowed_list:\t0-63\n", "proc/self/cgroup": "0::/\n",
                               "sys/fs/cgroup/cpu.max": "250000 100000\n", "sys/fs/cgroup/memory.max": "4294967296\n"])
        defer { try? FileManager.default.removeItem(atPath: docker) }
        XCTAssertEqual(HostResources.cpus(machine: 64, root: docker), 3)
        XCTAssertEqual(HostResources.memoryBytes(physical: 64 << 30, root: docker), 4 << 30)
        // A SLURM-like path whose parent is tighter than the leaf: the smallest counts (1 CPU, 2 GiB).
        let nested = try tree(["proc/self/cgroup": "0::/job_1/step_0\n",
                               "sys/fs/cgroup/job_1/cpu.max": "100000 100000\n", "sys/fs/cgroup/job_1/step_0/cpu.max": "max 100000\n",
                               "sys/fs/cgroup/job_1/memory.max": "2147483648\n", "sys/fs/cgroup/job_1/step_0/memory.max": "max\n"])
        defer { try? FileManager.default.removeItem(atPath: nested) }
        XCTAssertEqual(HostResources.cpus(machine: 16, root: nested), 1)
        XCTAssertEqual(HostResources.memoryBytes(physical: 24 << 30, root: nested), 2 << 30)
        // cgroup v1: quota 150000 / period 100000 → 2 CPUs; "-1" is no limit; the memory limit's
        // "no limit" value (9223372036854771712) is above any machine's memory.
        let v1 = try tree(["proc/self/cgroup": "4:memory:/a\n2:cpu,cpuacct:/a\n0::/\n",
                           "sys/fs/cgroup/cpu/a/cpu.cfs_quota_us": "150000\n", "sys/fs/cgroup/cpu/a/cpu.cfs_period_us": "100000\n",
                           "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
                           "sys/fs/cgroup/memory/a/memory.limit_in_bytes": "9223372036854771712\n"])
        defer { try? FileManager.default.removeItem(atPath: v1) }
        XCTAssertEqual(HostResources.cpus(machine: 4, root: v1), 2)
        XCTAssertEqual(HostResources.memoryBytes(physical: 24 << 30, root: v1), 24 << 30)
        // This process, as the kernel shows it: never more than the machine's count, at least one.
        XCTAssertTrue((1...max(1, ProcessInfo.processInfo.activeProcessorCount)).contains(HostResources.cpus))
    }
}
