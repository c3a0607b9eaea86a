import Foundation

struct Sample {
    var seconds: Double
    var outputBytes: Int
}

func time(_ body: () throws -> Int) rethrows -> Sample {
    let start = DispatchTime.now().uptimeNanoseconds
    let bytes = try body()
    return Sample(seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, outputBytes: bytes)
}

func shell(_ script: String) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-o", "pipefail", "-c", script]
    let pipe = Pipe()
    process.standardOutput = pipe
    try! process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

func fileSize(_ path: String) -> Int {
    (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
