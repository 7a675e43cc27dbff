#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Prints a line and flushes at once: the benchmark script polls the output of a running tool (`CONNECTED N`).
func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// Writes a line to standard error (unbuffered, straight to file descriptor 2).
func warn(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if written <= 0 { return }
            offset += written
        }
    }
}

/// Formats `value` with a fixed number of decimals, without Foundation; non-finite values print as 0, so the
/// result is always a valid JSON number.
func fixed(_ value: Double, _ decimals: Int = 2) -> String {
    guard value.isFinite else { return "0" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9.0e18 else { return value < 0 ? "-9e18" : "9e18" }
    let units = UInt64(scaled)
    let sign = value < 0 && units > 0 ? "-" : ""
    guard decimals > 0 else { return sign + String(units) }
    let divisor = UInt64(scale)
    var fraction = String(units % divisor)
    while fraction.count < decimals { fraction = "0" + fraction }
    return sign + String(units / divisor) + "." + fraction
}

/// Builds the one-line JSON object of the `RESULT` line, keeping the keys in insertion order.
struct ResultLine {
    private var fields: [String] = []

    init(scenario: String) {
        add("scenario", string: scenario)
    }

    mutating func add(_ key: String, string value: String) {
        var escaped = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case _ where scalar.value < 0x20:
                escaped +=
                    "\\u00" + (scalar.value < 0x10 ? "0" : "")
                    + String(scalar.value, radix: 16)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        fields.append("\"\(key)\":\"\(escaped)\"")
    }

    mutating func add(_ key: String, _ value: Int) {
        fields.append("\"\(key)\":\(value)")
    }

    mutating func add(_ key: String, _ value: Double, decimals: Int = 2) {
        fields.append("\"\(key)\":\(fixed(value, decimals))")
    }

    mutating func add(_ key: String, _ value: Bool) {
        fields.append("\"\(key)\":\(value)")
    }

    func emit() {
        say("RESULT {" + fields.joined(separator: ",") + "}")
    }
}

/// Nearest-rank percentile of an ascending array.
func percentile(_ sorted: [UInt64], _ fraction: Double) -> UInt64 {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((fraction * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

func lossPercent(sent: Int, received: Int) -> Double {
    guard sent > 0 else { return 0 }
    return max(0, Double(sent - received)) * 100 / Double(sent)
}

/// Raises the soft limit on open files to the hard limit, for the thousands of sockets of the idle scenario.
func raiseOpenFileLimit() {
    var limit = rlimit()
    #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
        let resource = RLIMIT_NOFILE
    #endif
    guard getrlimit(resource, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    let previous = limit.rlim_cur
    limit.rlim_cur = limit.rlim_max
    if setrlimit(resource, &limit) != 0 {
        #if canImport(Darwin)
            // macOS reports an unlimited hard limit but caps the soft one at OPEN_MAX.
            limit.rlim_cur = min(rlim_t(OPEN_MAX), limit.rlim_max)
            if setrlimit(resource, &limit) != 0 { limit.rlim_cur = previous }
        #else
            limit.rlim_cur = previous
        #endif
    }
}

func openFileLimit() -> Int {
    var limit = rlimit()
    #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
        let resource = RLIMIT_NOFILE
    #endif
    guard getrlimit(resource, &limit) == 0 else { return -1 }
    return limit.rlim_cur > rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
}

func processID() -> Int {
    Int(getpid())
}
