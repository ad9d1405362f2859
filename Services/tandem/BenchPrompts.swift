/// The prompt set `tandem bench serve` cycles through: code (where drafts are accepted often) and
/// prose (where they are not), so speculative and centralized runs see the same realistic mix.
enum BenchPrompts {
    static let code: [String] = [
        "Write a Python function that returns the n-th Fibonacci number iteratively.",
        "Implement binary search over a sorted array in Swift and explain its complexity.",
        "Write a C function that reverses a singly linked list in place.",
        "Write a JavaScript function that debounces another function.",
        "Write a SQL query that returns the ten customers with the highest total order value.",
        "Implement a thread-safe LRU cache in Go.",
        "Write a Rust function that parses a comma-separated line of integers into a Vec<i64>.",
        "Write a bash script that prints the five largest files under the current directory.",
    ]
    static let prose: [String] = [
        "Describe a walk along a rocky coast at dawn.",
        "Explain to a child why the sky is blue.",
        "Write a short letter inviting a friend to a picnic.",
        "Summarize the causes of the French Revolution in a paragraph.",
        "Tell a short story about a robot who learns to paint.",
        "Give three tips for sleeping better, with reasons.",
    ]

    /// Interleaved code and prose prompts.
    static var all: [String] {
        var out: [String] = []
        for i in 0..<max(code.count, prose.count) {
            if i < code.count { out.append(code[i]) }
            if i < prose.count { out.append(prose[i]) }
        }
        return out
    }
}
