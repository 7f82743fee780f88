//! Fixed few-shot exemplars, one list per task. The hub training splits are not reachable
//! everywhere, so our k-shot prompts (the paper's shot counts where it states them; its exemplars
//! are not published) draw from these lists, in order (deterministic), skipping any exemplar whose
//! input equals the evaluated example's.
//!
//! Sources: WMT, SQuAD, TriviaQA, Natural Questions, WebQuestions, XSum and CNN/DM exemplars are
//! written for this project. GSM8K uses the eight chain-of-thought exemplars of Wei et al. (2022)
//! (as lm-eval's `gsm8k-cot`), with the final line in GSM8K's own `#### N` answer format. MBPP uses
//! the three prompt-split problems (task ids 2, 3, 4; CC-BY-4.0) that the common harnesses use.

/// One exemplar: input fields and the answer.
pub struct Exemplar {
    pub fields: &'static [(&'static str, &'static str)],
    pub answer: &'static str,
}

macro_rules! ex {
    ($answer:expr; $($k:literal => $v:expr),+ $(,)?) => {
        Exemplar { fields: &[$(($k, $v)),+], answer: $answer }
    };
}

/// The exemplars of `task` (empty if the task is zero-shot only).
pub fn exemplars(task: &str) -> &'static [Exemplar] {
    match task {
        "wmt14_en_de" => WMT,
        "gsm8k" => GSM8K,
        "mbpp" => MBPP,
        "squad_v2" => SQUAD,
        "trivia_qa" => TRIVIA,
        "natural_questions" => NQ,
        "web_questions" => WEBQ,
        "xsum" => XSUM,
        "cnn_dailymail" => CNNDM,
        _ => &[],
    }
}

static WMT: &[Exemplar] = &[
    ex!("Das Wetter ist heute sehr schön."; "source" => "The weather is very nice today."),
    ex!("Ich möchte ein Zimmer für zwei Nächte buchen."; "source" => "I would like to book a room for two nights."),
    ex!("Die Regierung kündigte neue Maßnahmen zur Senkung des Energieverbrauchs an."; "source" => "The government announced new measures to reduce energy consumption."),
    ex!("Wo ist der nächste Bahnhof?"; "source" => "Where is the nearest train station?"),
    ex!("Das Unternehmen meldete im dritten Quartal höhere Gewinne."; "source" => "The company reported higher profits in the third quarter."),
    ex!("Kinder sollten mehr Bücher lesen."; "source" => "Children should read more books."),
];

static GSM8K: &[Exemplar] = &[
    ex!("There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6.\n#### 6";
        "question" => "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?"),
    ex!("There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5.\n#### 5";
        "question" => "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?"),
    ex!("Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39.\n#### 39";
        "question" => "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?"),
    ex!("Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8.\n#### 8";
        "question" => "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?"),
    ex!("Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9.\n#### 9";
        "question" => "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?"),
    ex!("There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29.\n#### 29";
        "question" => "There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?"),
    ex!("Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls.\n#### 33";
        "question" => "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?"),
    ex!("Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8.\n#### 8";
        "question" => "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?"),
];

static MBPP: &[Exemplar] = &[
    ex!("def similar_elements(test_tup1, test_tup2):\n  res = tuple(set(test_tup1) & set(test_tup2))\n  return (res) ";
        "text" => "Write a function to find the similar elements from the given two tuple lists.",
        "tests" => "assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)\nassert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)\nassert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)"),
    ex!("import math\ndef is_not_prime(n):\n    result = False\n    for i in range(2,int(math.sqrt(n)) + 1):\n        if n % i == 0:\n            result = True\n    return result";
        "text" => "Write a python function to identify non-prime numbers.",
        "tests" => "assert is_not_prime(2) == False\nassert is_not_prime(10) == True\nassert is_not_prime(35) == True"),
    ex!("import heapq as hq\ndef heap_queue_largest(nums,n):\n  largest_nums = hq.nlargest(n, nums)\n  return largest_nums";
        "text" => "Write a function to find the largest integers from a given list of numbers using heap queue algorithm.",
        "tests" => "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],3)==[85, 75, 65]\nassert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],2)==[85, 75]\nassert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],5)==[85, 75, 65, 58, 35]"),
];

static SQUAD: &[Exemplar] = &[
    ex!("in the leaves";
        "title" => "Photosynthesis",
        "context" => "Photosynthesis is the process by which green plants use sunlight to make food from carbon dioxide and water. It takes place mainly in the leaves, inside small structures called chloroplasts.",
        "question" => "Where in a plant does photosynthesis mainly take place?"),
    ex!("unanswerable";
        "title" => "Photosynthesis",
        "context" => "Photosynthesis is the process by which green plants use sunlight to make food from carbon dioxide and water. It takes place mainly in the leaves, inside small structures called chloroplasts.",
        "question" => "Who first measured the speed of photosynthesis?"),
];

static TRIVIA: &[Exemplar] = &[
    ex!("Mars"; "question" => "Which planet in our solar system is known as the Red Planet?"),
    ex!("Leonardo da Vinci"; "question" => "Who painted the Mona Lisa?"),
];

static NQ: &[Exemplar] = &[
    ex!("Jane Austen"; "question" => "who wrote the novel pride and prejudice"),
    ex!("1969"; "question" => "when did the first man land on the moon"),
];

static WEBQ: &[Exemplar] = &[
    ex!("Canberra"; "question" => "what is the capital city of australia?"),
    ex!("Portuguese"; "question" => "what language do they speak in brazil?"),
];

static XSUM: &[Exemplar] = &[
    ex!("A town council has approved plans for a new cycle path linking the railway station with the city centre.";
        "document" => "Councillors voted eight to three in favour of the scheme on Tuesday evening. The two-mile route will run along the old canal towpath and is expected to cost about £1.2m. Supporters said it would cut traffic on the busy high street, while opponents raised concerns about lighting and the loss of trees. Work is due to begin in the spring."),
];

static CNNDM: &[Exemplar] = &[
    ex!("Councillors approved a two-mile cycle path along the old canal towpath .\nThe scheme is expected to cost about £1.2m and work starts in the spring .";
        "article" => "Councillors voted eight to three in favour of the scheme on Tuesday evening. The two-mile route will run along the old canal towpath and is expected to cost about £1.2m. Supporters said it would cut traffic on the busy high street, while opponents raised concerns about lighting and the loss of trees. Work is due to begin in the spring."),
];
