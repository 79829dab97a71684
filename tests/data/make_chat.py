"""Writes the chat fixtures in their hub datasets' schemas (run from the repository root; deterministic):
tests/data/magpie-air/{train,test}.jsonl (Magpie-Align/Magpie-Air-DPO-100K-v0.1) and
tests/data/ultrafeedback/{train_prefs,test_prefs}.jsonl (HuggingFaceH4/ultrafeedback_binarized).
Instructions and answers are written by hand below; the ArmoRM-like scores are made up (Magpie's chosen / rejected are
its highest- / lowest-scored responses, as on the hub); UltraFeedback's prompt_id is the SHA-256 of the prompt."""
import hashlib, json, random
from pathlib import Path

TOPICS = [
    ("What is the difference between a list and a tuple in Python?", "Lists are mutable and tuples are immutable"),
    ("Give me three tips for sleeping better.", "Keep a regular schedule, avoid screens late and keep the room cool"),
    ("How do I convert Celsius to Fahrenheit?", "Multiply by 9/5 and add 32"),
    ("Explain photosynthesis to a ten-year-old.", "Plants use sunlight, water and air to make their own food"),
    ("Write a haiku about autumn rain.", "Cold drops on red leaves / the gutter hums its low song / the street smells of earth"),
    ("What causes the seasons on Earth?", "The tilt of the Earth's axis changes how directly sunlight hits each hemisphere"),
    ("Suggest a name for a bakery that sells only bread.", "The Daily Crumb"),
    ("How can I politely decline a meeting invitation?", "Thank the organiser, say you cannot attend and offer an alternative"),
    ("What is a prime number?", "A whole number greater than 1 whose only divisors are 1 and itself"),
    ("Summarise the plot of Romeo and Juliet in two sentences.", "Two young lovers from feuding families marry in secret. A chain of misunderstandings ends in both their deaths"),
    ("Why is the sky blue?", "Air scatters short blue wavelengths of sunlight more than red ones"),
    ("How do vaccines work?", "They train the immune system to recognise a germ without causing the disease"),
    ("What should I pack for a weekend hiking trip?", "Water, layers, a map, snacks, a first-aid kit and a headlamp"),
    ("Explain what a hash table is.", "A structure that maps keys to values by hashing each key to a bucket"),
    ("Translate 'good morning' into Spanish and French.", "Buenos dias in Spanish and bonjour in French"),
    ("How do I make a simple vinaigrette?", "Whisk three parts oil with one part vinegar, salt and a little mustard"),
    ("What is the capital of Australia?", "Canberra"),
    ("Give me a short motivational quote for Monday.", "Small steps every day add up to big results"),
    ("How does compound interest work?", "Interest is earned on the principal and on the interest already added"),
    ("Write a limerick about a cat.", "A cat with a taste for the cream / devised a most devious scheme"),
    ("What are the main causes of inflation?", "Demand growing faster than supply, rising costs and expanding money supply"),
    ("Explain recursion with an example.", "A function that calls itself, like factorial(n) = n * factorial(n - 1)"),
    ("How can I improve my public speaking?", "Practise aloud, know your opening, slow down and look at the audience"),
    ("What is the boiling point of water at sea level?", "100 degrees Celsius, or 212 degrees Fahrenheit"),
    ("Describe the water cycle.", "Water evaporates, condenses into clouds, falls as rain and flows back to the sea"),
    ("What is machine learning?", "Programs that improve at a task by learning patterns from data"),
    ("How do I remove a red wine stain from a carpet?", "Blot, do not rub, then apply cold water and a little dish soap"),
    ("Recommend a beginner-friendly houseplant.", "A pothos: it tolerates low light and irregular watering"),
    ("What is the Pythagorean theorem?", "In a right triangle the square of the hypotenuse equals the sum of the squares of the other sides"),
    ("Why do cats purr?", "Purring signals contentment and may also soothe the cat when stressed"),
    ("How many continents are there?", "Seven by the most common convention"),
    ("Write a two-line poem about the sea.", "The sea keeps every secret we have told / and gives them back as silver, blue and cold"),
    ("What is the difference between weather and climate?", "Weather is short-term conditions; climate is the long-term average"),
    ("How do I start learning to play the guitar?", "Learn a few open chords, practise ten minutes a day and play songs you like"),
    ("What does a CPU do?", "It executes the instructions of programs, one small step at a time"),
    ("Give me an idea for a rainy-day activity with kids.", "Build a blanket fort and read stories inside it with a torch"),
]
FILLER = ("This is a long, detailed answer that explains every step carefully, with background, caveats, examples and a "
          "summary at the end, so that it goes well past a small token limit. ")
LONG_PROMPT = (" Please answer in full detail, covering the history, the main ideas, common misconceptions, practical "
               "examples and further reading, and explain each point as if to a newcomer.") * 12

def responses(q, a, rng, long=False):
    "Five answers of different quality (and length)."
    out = [f"{a}.",
           f"{a}. In short, that is the key idea.",
           f"Great question! {a}. I hope this helps, and let me know if you want more details.",
           f"I am not sure, but I think it depends. Maybe look it up.",
           f"{a}. " + " ".join(f"Point {k}: {a.lower()}." for k in range(1, rng.randint(2, 5)))]
    if long: out[4] += " " + FILLER * 30
    return out

def magpie_rows(items, seed, long_at):
    rng, rows = random.Random(seed), []
    for i, (q, a) in enumerate(items):
        inst = q + (LONG_PROMPT if i in long_at[:1] else "")
        resps = responses(q, a, rng, long=i in long_at[1:])
        scores = [round(0.05 + 0.03 * rng.random() + (0.10 if k in (0, 4) else 0.02 * k), 6) for k in range(5)]
        scores[3] = round(scores[3] - 0.1, 6)
        if i in long_at[1:]: scores[4] = round(scores[4] + 0.2, 6)   # the long answer is the chosen one
        hi, lo = max(range(5), key=scores.__getitem__), min(range(5), key=scores.__getitem__)
        uuid = "%08x-%04x-%04x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(48))
        rows.append(dict(
            uuid=uuid, instruction=inst,
            gen_input_configs=dict(temperature=1.0, top_p=1.0, input_generator="meta-llama/Meta-Llama-3-8B-Instruct",
                                   seed=None, extract_input="<|start_header_id|>user<|end_header_id|>\n\n"),
            intent=f"The user wants to know: {q.lower()}", knowledge="The model needs to know basic facts about the topic.",
            difficulty=rng.choice(["very easy", "easy", "medium"]), input_quality=rng.choice(["good", "excellent", "average"]),
            quality_explanation="The query is clear and specific.", task_category=rng.choice(["Information seeking", "Creative writing", "Advice seeking", "Coding & Debugging", "Math"]),
            input_length=len(inst), responses=resps,
            gen_response_configs=dict(prompt=inst, temperature=0.8, top_p=1.0, repetition_penalty=1.0, max_tokens=4096,
                                      stop_tokens=["<|eot_id|>", "<|end_of_text|>", "<|starter_header_id|>", "<|end_header_id|>"],
                                      output_generator="meta-llama/Meta-Llama-3-8B-Instruct", engine="vllm"),
            rewards_armorm=[dict(score=s) for s in scores],
            chosen=[dict(content=inst, role="user"), dict(content=resps[hi], role="assistant")],
            rejected=[dict(content=inst, role="user"), dict(content=resps[lo], role="assistant")]))
    return rows

def uf_rows(items, seed, long_at):
    rng, rows = random.Random(seed), []
    for i, (q, a) in enumerate(items):
        prompt = "Answer the question. " + q + (LONG_PROMPT if i in long_at[:1] else "")
        resps = responses(q, a, rng, long=i in long_at[1:])
        c, r = (resps[4], resps[3]) if i in long_at[1:] else (resps[rng.choice([0, 1, 2])], resps[3])
        sc = rng.choice([7.0, 7.5, 8.0, 8.5, 9.0, 10.0]); sr = rng.choice([1.0, 2.0, 3.0, 4.0, 5.5, 6.0])
        chosen = [dict(content=prompt, role="user"), dict(content=c, role="assistant")]
        rows.append(dict(prompt=prompt, prompt_id=hashlib.sha256(prompt.encode()).hexdigest(), chosen=chosen,
                         rejected=[dict(content=prompt, role="user"), dict(content=r, role="assistant")],
                         messages=chosen, score_chosen=sc, score_rejected=sr))
    return rows

def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows: f.write(json.dumps(r) + "\n")
    print(path, len(rows))

if __name__ == "__main__":
    here = Path(__file__).parent
    train, test = TOPICS[:24], TOPICS[24:]
    # rows over a small token limit: a long prompt (first index) and a long answer (second index)
    write(here / "magpie-air/train.jsonl", magpie_rows(train, 0, [5, 17]))
    write(here / "magpie-air/test.jsonl", magpie_rows(test, 1, [3, 8]))
    write(here / "ultrafeedback/train_prefs.jsonl", uf_rows(train[::-1], 2, [2, 11]))
    write(here / "ultrafeedback/test_prefs.jsonl", uf_rows(test[::-1], 3, [6, 9]))
