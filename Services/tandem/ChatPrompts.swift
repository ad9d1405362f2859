// The `chat` prompt set: 50 prose prompts written for Tandem.

/// Prose prompts for `--prompts chat`, written by the Tandem developers (no public set is shipped in
/// a PyPI wheel we could pin: `fschat` 0.2.36 does not include MT-bench's `question.jsonl` and
/// `alpaca-eval` 0.6.6 ships only evaluator configs and leaderboards). They cover the categories
/// MT-bench uses — writing, roleplay, reasoning, math, extraction, STEM, humanities — plus advice
/// and summaries, with short and long expected answers, so a draft model meets the prose it
/// predicts badly as well as formulaic text it predicts well. Two carry a system message and one
/// is a second turn, so the `messages` path is exercised too. Same licence as Tandem.
enum ChatPrompts {
    static let texts: [String] = [
        // Writing
        "Write a short travel blog post about a weekend in Lisbon, highlighting food and architecture.",
        "Draft a polite email to a landlord asking for a leaking kitchen tap to be repaired this week.",
        "Write a 12-line poem about the first snow of winter, without using the word 'white'.",
        "Compose a product description for a reusable water bottle aimed at hikers.",
        "Write the opening paragraph of a mystery novel set in a lighthouse.",
        "Write a persuasive paragraph arguing that cities should plant more trees.",
        "Write a thank-you note to a teacher who helped you through a difficult year.",
        "Write a short fable about a fox and a crow that ends with a clear moral.",
        // Roleplay
        "Pretend you are a museum guide. Introduce a painting of a stormy sea to a group of visitors.",
        "You are a ship's captain in 1850. Describe to your crew why you are changing course.",
        "Act as a friendly librarian and recommend three novels to a teenager who loved fantasy adventures.",
        "Play a chef explaining to a beginner how to make a simple tomato soup.",
        "Imagine you are a tour guide on Mars in the year 2200. Welcome the new visitors.",
        "As a personal trainer, give a nervous beginner a plan for their first week at the gym.",
        // Reasoning
        "If all bloops are razzies and all razzies are lazzies, are all bloops definitely lazzies? Explain.",
        "A man is looking at a photograph and says: 'Brothers and sisters I have none, but that man's father is my father's son.' Who is in the photograph?",
        "Three friends split a bill. One paid twice as much as each of the others and the total was 60 euros. How much did each pay?",
        "You have two ropes that each burn in exactly one hour, but unevenly. How can you measure 45 minutes?",
        "Is it possible for a week to contain two Fridays the 13th in the same month? Explain your reasoning.",
        "A train leaves at 9:40 and arrives at 13:15. How long is the journey, and what if it is delayed by 35 minutes?",
        // Math
        "Explain step by step how to compute 15% of 240 in your head.",
        "What is the sum of the interior angles of a hexagon? Show how you derive it.",
        "Solve for x: 3x + 7 = 2x - 5, and check your answer.",
        "Explain what a prime number is and list the primes between 50 and 80.",
        "A rectangle has a perimeter of 30 cm and its length is twice its width. What is its area?",
        "Explain the difference between mean, median and mode using the numbers 2, 3, 3, 5, 9.",
        // Extraction and summaries
        "Extract the names, dates and places from this sentence: 'On 4 July 1997, Maria Lopez flew from Madrid to Toronto to meet Kenji Sato.'",
        "Summarize the plot of Romeo and Juliet in three sentences.",
        "List the main ingredients of a classic margherita pizza as a bulleted list.",
        "Turn this note into a to-do list: 'need to call mum, buy milk and eggs, book dentist, finish the report by Friday'.",
        "Summarize the main arguments for and against working from home.",
        // STEM
        "Explain how vaccines train the immune system, in terms a 12-year-old can follow.",
        "Why do we have seasons on Earth? Correct the common misconception about distance to the Sun.",
        "Describe how a refrigerator keeps food cold.",
        "What is the difference between weather and climate?",
        "Explain how photosynthesis works and why it matters for life on Earth.",
        "How does a rainbow form? Mention refraction and reflection.",
        "Explain in plain language what a black hole is.",
        // Humanities
        "What were the main causes of the First World War?",
        "Compare the Roman Republic and the Roman Empire in a short paragraph.",
        "Why was the invention of the printing press so important for Europe?",
        "Describe the main ideas of Stoic philosophy and how they might help someone today.",
        "What is the difference between a democracy and a republic?",
        "Explain why the Silk Road mattered for trade and culture.",
        // Advice
        "Give five practical tips for learning a new language as an adult.",
        "How should I prepare for a job interview at a small company?",
        "What are sensible first steps for someone who wants to start saving money each month?",
    ]

    /// All chat prompts: the single-turn texts, then the ones that use a system message or a second turn.
    static let all: [BenchPrompt] = {
        var prompts = texts.enumerated().map { index, text in
            BenchPrompt(id: id(index + 1), messages: [PromptMessage(role: "user", content: text)])
        }
        prompts.append(BenchPrompt(id: id(prompts.count + 1), messages: [
            PromptMessage(role: "system", content: "You are a patient tutor who answers in short, clear paragraphs."),
            PromptMessage(role: "user", content: "Why does ice float on water?"),
        ]))
        prompts.append(BenchPrompt(id: id(prompts.count + 1), messages: [
            PromptMessage(role: "system", content: "You are a travel agent. Be concise and concrete."),
            PromptMessage(role: "user", content: "Plan a three-day trip to Kyoto for someone who likes gardens and tea."),
        ]))
        prompts.append(BenchPrompt(id: id(prompts.count + 1), messages: [
            PromptMessage(role: "user", content: "Give me a name for a small bakery by the sea."),
            PromptMessage(role: "assistant", content: "How about \"Salt & Crumb\"?"),
            PromptMessage(role: "user", content: "Nice. Now write a two-sentence slogan for it and explain your choice."),
        ]))
        return prompts
    }()

    private static func id(_ n: Int) -> String {
        n < 10 ? "chat/0\(n)" : "chat/\(n)"
    }
}
