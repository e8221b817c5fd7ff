//! The grounded `q(x)` (docs/design.md §7.2) on constructed texts, with the real models of the
//! embedded default: SmolLM2-135M-Instruct as the reference model and all-MiniLM-L6-v2.
//! Noise, shuffled words and a looped title score near 0; a fluent text about something else
//! scores low; a hand-written grounded explanation scores high; and every text of the nine
//! exploit classes that a policy learns to write (issue 31) scores at most 0.6 × a faithful
//! explanation of the same item, on ml-100k and Book-Crossing rows.

mod common;

use common::successor_dataset;
use recrl_lib::config::{Config, RewardConfig};
use recrl_lib::data::{Dataset, DatasetName, ItemMeta};
use recrl_lib::explainer::{Explainer, LoadOptions};
use recrl_lib::paths::Layout;
use recrl_lib::rng::Rng;
use recrl_lib::sim::quality::{Grader, QualityParts, Subject};
use std::path::Path;
use tch::Device;

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The form gates as the configuration fixes them (`reward` section).
fn configured_reward() -> RewardConfig {
    Config::load_default("ml-100k").unwrap().reward
}

fn reference_model() -> Explainer {
    let path =
        root().join("checkpoints/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    Explainer::load(&path, Device::Cpu, LoadOptions::default()).unwrap()
}

/// Item 3 is Star Wars, item 2 Return of the Jedi (in the user's history).
fn films() -> Dataset {
    let mut ds = successor_dataset(4, 12, 3);
    ds.items[3].title = "Star Wars".into();
    ds.items[3].genres = vec!["Action".into(), "Adventure".into(), "Sci-Fi".into()];
    ds.items[3].year = Some(1977);
    ds.items[2].title = "Return of the Jedi".into();
    ds.items[2].genres = vec!["Action".into(), "Sci-Fi".into()];
    ds
}

const GOOD: &str = "Since you loved Return of the Jedi, you will enjoy Star Wars: the original space adventure with thrilling action and unforgettable heroes.";
const OFF_TOPIC: &str = "The weather in the mountains was cold this morning, so we stayed inside and cooked a large breakfast for the whole family.";

fn shuffled(text: &str, seed: u64) -> String {
    let mut w: Vec<&str> = text.split_whitespace().collect();
    Rng::new(seed).shuffle(&mut w);
    w.join(" ")
}

/// Strings of sub-words drawn uniformly from the tokenizer's vocabulary.
fn random_subwords(ex: &Explainer, n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let vocab = ex.model.config.vocab_size;
    (0..n)
        .map(|_| {
            let ids: Vec<u32> = (0..30).map(|_| rng.below(vocab) as u32).collect();
            ex.tokenizer.decode(&ids, true).unwrap()
        })
        .collect()
}

fn grade(grader: &Grader, ex: &mut Explainer, ds: &Dataset, texts: &[&str]) -> Vec<QualityParts> {
    let history = [2u32];
    let subjects: Vec<Subject> = texts
        .iter()
        .map(|t| Subject {
            text: t,
            item: 3,
            history: &history,
        })
        .collect();
    grader.grade(ex, ds, &subjects).unwrap()
}

#[test]
fn noise_scores_near_zero_and_a_grounded_explanation_scores_high() {
    let mut ex = reference_model();
    let grader = Grader::load(&Layout::new(root()), &mut ex, &configured_reward()).unwrap();
    let ds = films();
    eprintln!("fluency anchors {:?}", grader.fluency);
    let noise = random_subwords(&ex, 8, 1);
    let shuffles: Vec<String> = (0..8).map(|s| shuffled(GOOD, s)).collect();
    let looped = "Star Wars Star Wars Star Wars Star Wars Star Wars Star Wars Star Wars Star Wars";
    let mut texts: Vec<&str> = vec![GOOD, OFF_TOPIC, looped];
    texts.extend(noise.iter().map(String::as_str));
    texts.extend(shuffles.iter().map(String::as_str));
    let parts = grade(&grader, &mut ex, &ds, &texts);
    for (t, p) in texts.iter().zip(&parts) {
        eprintln!("q {:.3} {p:?}  {t:?}", p.q());
    }
    let q: Vec<f64> = parts.iter().map(QualityParts::q).collect();
    assert!(
        q[0] >= 0.7,
        "a hand-written grounded explanation: q {}",
        q[0]
    );
    assert!(q[1] <= 0.4, "fluent but off-topic: q {}", q[1]);
    assert!(q[2] <= 0.2, "a looped title: q {}", q[2]);
    for (i, v) in q[3..11].iter().enumerate() {
        assert!(*v <= 0.05, "random sub-words {:?}: q {v}", noise[i]);
    }
    for (i, v) in q[11..].iter().enumerate() {
        assert!(*v <= 0.05, "shuffled words {:?}: q {v}", shuffles[i]);
    }
    assert!(parts[0].relevance > parts[1].relevance);
}

#[test]
fn the_reference_model_ignores_the_adapter_and_the_grade_is_deterministic() {
    let mut ex = reference_model();
    let prefix = ex.chat_prefix("Say something.").unwrap();
    let before = ex.reference_log_probs(&prefix, &[GOOD, OFF_TOPIC]).unwrap();
    tch::manual_seed(3);
    ex.init_lora(&recrl_lib::explainer::LoraConfig {
        rank: 2,
        ..Default::default()
    })
    .unwrap();
    // A non-zero B: the adapted model now differs from the base.
    for (_, mut v) in ex.trainable.variables() {
        tch::no_grad(|| {
            let _ = v.fill_(0.05);
        });
    }
    let after = ex.reference_log_probs(&prefix, &[GOOD, OFF_TOPIC]).unwrap();
    assert_eq!(before, after, "LoRA is off for the reference");
    assert!(ex.model.lora_enabled, "and back on after");
    assert!(before[0] < 0.0 && before[0] > -10.0, "{before:?}");
}

// ------------------------------------------------------------ what a policy learns to write

/// The exploit classes of issue 31, in the order of each case's texts.
const CLASSES: [&str; 9] = [
    "cut off mid-sentence",
    "contradicted facts",
    "invented title",
    "a different item",
    "keyword list",
    "list template",
    "reference sentence copied",
    "metadata dump",
    "digit run",
];

/// One recommended item, the history item its prompt listed, a hand-written faithful
/// explanation and one text of each exploit class ([`CLASSES`]).
struct Case {
    item: u32,
    history: u32,
    faithful: &'static str,
    exploits: [&'static str; 9],
}

/// Catalogue rows as the loaders make them from the real files (ml-100k's RecBole
/// `ml-100k.item`; Book-Crossing's `BX-Books.csv`, HTML entities decoded): title, year,
/// genres, author. Item ids are their 1-based positions.
type Row = (
    &'static str,
    i32,
    &'static [&'static str],
    Option<&'static str>,
);

fn catalogue(name: DatasetName, rows: &[Row]) -> Dataset {
    let n = rows.len();
    let seqs: Vec<Vec<u32>> = (0..3).map(|_| (1..=n as u32).collect()).collect();
    let mut ds = Dataset::from_sequences(name, &seqs, n).unwrap();
    for (k, (title, year, genres, author)) in rows.iter().enumerate() {
        ds.items[k + 1] = ItemMeta {
            title: title.to_string(),
            year: Some(*year),
            genres: genres.iter().map(|g| g.to_string()).collect(),
            author: author.map(str::to_string),
            tags: vec![],
        };
    }
    ds
}

const FILMS: [Row; 9] = [
    (
        "Star Wars",
        1977,
        &["Action", "Adventure", "Romance", "Sci-Fi", "War"],
        None,
    ),
    (
        "Return of the Jedi",
        1983,
        &["Action", "Adventure", "Romance", "Sci-Fi", "War"],
        None,
    ),
    ("Fargo", 1996, &["Crime", "Drama", "Thriller"], None),
    ("Pulp Fiction", 1994, &["Crime", "Drama"], None),
    (
        "Toy Story",
        1995,
        &["Animation", "Children's", "Comedy"],
        None,
    ),
    (
        "Aladdin",
        1992,
        &["Animation", "Children's", "Comedy", "Musical"],
        None,
    ),
    (
        "Alien",
        1979,
        &["Action", "Horror", "Sci-Fi", "Thriller"],
        None,
    ),
    ("Heat", 1995, &["Action", "Crime", "Thriller"], None),
    (
        "Lion King, The",
        1994,
        &["Animation", "Children's", "Musical"],
        None,
    ),
];

const BOOKS: [Row; 10] = [
    ("The Da Vinci Code", 2003, &[], Some("Dan Brown")),
    ("Angels & Demons", 2001, &[], Some("Dan Brown")),
    (
        "Harry Potter and the Sorcerer's Stone (Harry Potter (Paperback))",
        1999,
        &[],
        Some("J. K. Rowling"),
    ),
    (
        "Harry Potter and the Chamber of Secrets (Book 2)",
        2000,
        &[],
        Some("J. K. Rowling"),
    ),
    ("The Lovely Bones: A Novel", 2002, &[], Some("Alice Sebold")),
    ("The Secret Life of Bees", 2003, &[], Some("Sue Monk Kidd")),
    ("Jurassic Park", 1999, &[], Some("Michael Crichton")),
    (
        "The Red Tent (Bestselling Backlist)",
        1998,
        &[],
        Some("Anita Diamant"),
    ),
    ("The Shining", 1977, &[], Some("Stephen King")),
    (
        "The Murder of Roger Ackroyd",
        1926,
        &[],
        Some("Agatha Christie"),
    ),
];

const FILM_CASES: [Case; 3] = [
    Case {
        item: 1,
        history: 2,
        faithful: "Since you loved Return of the Jedi, you will enjoy Star Wars, the 1977 space adventure where it all began, with great action and a little romance.",
        exploits: [
            "Since you loved Return of the Jedi, you will enjoy Star Wars, the 1977 space adventure where it all began, with great action and",
            "Since you loved Return of the Jedi, you will enjoy Star Wars, a gentle 1992 romantic comedy about two chefs who open a bakery in Paris.",
            "Since you loved Return of the Jedi, you will enjoy Star Wars and its sequel \"Star Wars: Rise of the Clones\", two great space adventures.",
            "Since you loved Return of the Jedi, you will enjoy Alien, a tense 1979 horror film about a crew hunted by a creature on their ship.",
            "Star Wars, Return of the Jedi, Action, Adventure, Sci-Fi, 1977, Romance, War.",
            "You may enjoy: Star Wars (1977)\nYou may also enjoy: Return of the Jedi (1983)\nYou may",
            "Since you loved Return of the Jedi, note that Star Wars is an Action, Adventure, Romance, Sci-Fi and War film from 1977.",
            "Star Wars | genres: Action, Adventure, Romance, Sci-Fi, War | year: 1977 | like Return of the Jedi.",
            "Since you loved Return of the Jedi, Star Wars 1977 1977 1977 is an action adventure you will enjoy.",
        ],
    },
    Case {
        item: 3,
        history: 4,
        faithful: "If you liked the crime stories of Pulp Fiction, Fargo is a gripping 1996 crime thriller about a kidnapping plan that goes badly wrong in the snow.",
        exploits: [
            "If you liked the crime stories of Pulp Fiction, Fargo is a gripping 1996 crime thriller about a kidnapping plan that goes",
            "If you liked Pulp Fiction, Fargo is a cheerful 1985 musical for the whole family, full of songs and dancing.",
            "If you liked Pulp Fiction, you will enjoy Fargo and its follow-up \"Fargo Returns\", two gripping crime stories.",
            "If you liked Pulp Fiction, you will enjoy Heat, a tense 1995 crime thriller about a bank robber and the detective who chases him.",
            "Fargo, Crime, Drama, Thriller, 1996, Pulp Fiction, Crime, Drama.",
            "You may enjoy: Fargo (1996)\nYou may also enjoy: Pulp Fiction (1994)",
            "Fargo is a Crime, Drama and Thriller film from 1996, much like Pulp Fiction.",
            "Title: Fargo; Genres: Crime|Drama|Thriller; Year: 1996. Similar to Pulp Fiction.",
            "If you liked Pulp Fiction, you will enjoy Fargo 3.3.3.3, a gripping crime thriller.",
        ],
    },
    Case {
        item: 5,
        history: 6,
        faithful: "Since you enjoyed Aladdin, Toy Story is a funny animated film from 1995 about toys that come to life, and children and adults both love it.",
        exploits: [
            "Since you enjoyed Aladdin, Toy Story is a funny animated film from 1995 about toys that come to life when their",
            "Since you enjoyed Aladdin, Toy Story is a grim 1974 war documentary about soldiers far from home.",
            "Since you enjoyed Aladdin, try Toy Story, then go on with sequels such as \"Toy Story 7: Lost in Space\".",
            "Since you enjoyed Aladdin, you will enjoy The Lion King, a 1994 animated musical about a young lion who must become king.",
            "Toy Story Aladdin Animation Children's Comedy 1995 Toy Story Comedy.",
            "You may enjoy: Toy Story (1995)\nYou may also enjoy: Aladdin (1992)\nYou may",
            "Since you enjoyed Aladdin: Toy Story is an Animation, Children's and Comedy film from 1995.",
            "Toy Story [1995] genres: Animation, Children's, Comedy. Liked: Aladdin.",
            "Since you enjoyed Aladdin, Toy Story 1995 1995 1995 1995 is a funny animated film for you.",
        ],
    },
];

const BOOK_CASES: [Case; 3] = [
    Case {
        item: 1,
        history: 2,
        faithful: "Since you enjoyed Angels & Demons, you will like The Da Vinci Code, Dan Brown's 2003 puzzle-filled chase through Paris that keeps you turning pages.",
        exploits: [
            "Since you enjoyed Angels & Demons, you will like The Da Vinci Code, Dan Brown's 2003 puzzle-filled chase through Paris that keeps",
            "Since you enjoyed Angels & Demons, you will like The Da Vinci Code by Stephen King, a 1987 story of a haunted hotel.",
            "Since you enjoyed Angels & Demons, you will like The Da Vinci Code and its prequel \"The Vatican Cipher\" by Dan Brown.",
            "Since you enjoyed Angels & Demons, you will like Jurassic Park, Michael Crichton's 1999 thriller about dinosaurs brought back to life.",
            "The Da Vinci Code, Dan Brown, 2003, Angels & Demons, Dan Brown, 2001, Doubleday.",
            "You may enjoy: The Da Vinci Code (2003)\nYou may also enjoy: Angels & Demons (2001)",
            "Since you enjoyed Angels & Demons: The Da Vinci Code is a book by Dan Brown from 2003.",
            "The Da Vinci Code | author: Dan Brown | year: 2003 | publisher: Doubleday",
            "Since you enjoyed Angels & Demons, The Da Vinci Code 0385504209 is a gripping read for you.",
        ],
    },
    Case {
        item: 3,
        history: 4,
        faithful: "You loved Harry Potter and the Chamber of Secrets, so go back to where it began with Harry Potter and the Sorcerer's Stone by J. K. Rowling.",
        exploits: [
            "You loved Harry Potter and the Chamber of Secrets, so go back to where it began with Harry Potter and the Sorcerer's Stone by J. K.",
            "You loved Harry Potter and the Chamber of Secrets, so read Harry Potter and the Sorcerer's Stone, a 1965 mystery by Agatha Christie.",
            "You loved Harry Potter and the Chamber of Secrets, so read Harry Potter and the Sorcerer's Stone and then \"The Dragon of the Dark Lake\".",
            "You loved Harry Potter and the Chamber of Secrets, so read Jurassic Park by Michael Crichton, a thriller about dinosaurs on an island.",
            "Harry Potter, Sorcerer's Stone, J. K. Rowling, 1999, Chamber of Secrets, Rowling, 2000.",
            "You may enjoy: Harry Potter and the Sorcerer's Stone (1999)\nYou may also enjoy: Harry Potter and the Chamber of Secrets (Book 2)",
            "You loved the Chamber of Secrets, and Harry Potter and the Sorcerer's Stone (Harry Potter (Paperback)) is a book by J. K. Rowling from 1999.",
            "Harry Potter and the Sorcerer's Stone | Author: J. K. Rowling | Year: 1999 | Format: Paperback",
            "You loved the Chamber of Secrets, so read Harry Potter and the Sorcerer's Stone 1999 1999 1999, a magical story.",
        ],
    },
    Case {
        item: 5,
        history: 6,
        faithful: "Since The Secret Life of Bees moved you, try The Lovely Bones, Alice Sebold's 2002 novel about a family learning to live with a terrible loss.",
        exploits: [
            "Since The Secret Life of Bees moved you, try The Lovely Bones, Alice Sebold's 2002 novel about a family learning to live with a",
            "Since The Secret Life of Bees moved you, try The Lovely Bones, a 1955 novel by Stephen King about a haunted hotel.",
            "Since The Secret Life of Bees moved you, try The Lovely Bones, which readers often compare to \"The Quiet Orchard\" by Alice Sebold.",
            "Since The Secret Life of Bees moved you, try The Red Tent by Anita Diamant, a 1998 novel about the women of the Bible.",
            "The Lovely Bones, Alice Sebold, 2002, The Secret Life of Bees, Sue Monk Kidd, 2003.",
            "You may enjoy: The Lovely Bones: A Novel (2002)\nYou may also enjoy: The Secret Life of Bees (2003)\nYou may",
            "Since you liked The Secret Life of Bees: The Lovely Bones: A Novel is a book by Alice Sebold from 2002.",
            "Title: The Lovely Bones: A Novel; Author: Alice Sebold; Year: 2002; Publisher: Little, Brown.",
            "Since The Secret Life of Bees moved you, try The Lovely Bones 2.2.2.2 by Alice Sebold.",
        ],
    },
];

/// Grades every case's faithful text and exploits; returns, per case, the faithful text's
/// parts and each exploit's.
fn grade_cases(
    grader: &Grader,
    ex: &mut Explainer,
    ds: &Dataset,
    cases: &[Case],
) -> Vec<(QualityParts, Vec<QualityParts>)> {
    cases
        .iter()
        .map(|c| {
            let history = [c.history];
            let subjects: Vec<Subject> = std::iter::once(c.faithful)
                .chain(c.exploits)
                .map(|text| Subject {
                    text,
                    item: c.item,
                    history: &history,
                })
                .collect();
            let parts = grader.grade(ex, ds, &subjects).unwrap();
            (parts[0], parts[1..].to_vec())
        })
        .collect()
}

#[test]
fn no_exploit_earns_more_than_six_tenths_of_a_faithful_explanation() {
    let mut ex = reference_model();
    let grader = Grader::load(&Layout::new(root()), &mut ex, &configured_reward()).unwrap();
    let films = catalogue(DatasetName::Ml100k, &FILMS);
    let books = catalogue(DatasetName::Bookcrossing, &BOOKS);
    let mut failures = Vec::new();
    let mut by_class = vec![Vec::new(); CLASSES.len()];
    for (ds, cases) in [(&films, &FILM_CASES), (&books, &BOOK_CASES)] {
        for (case, (good, bad)) in cases.iter().zip(grade_cases(&grader, &mut ex, ds, cases)) {
            let title = &ds.items[case.item as usize].title;
            eprintln!("{title}: faithful q {:.3} {good:?}", good.q());
            if good.q() < 0.8 {
                failures.push(format!(
                    "{title}: the faithful text scores {:.3} < 0.8",
                    good.q()
                ));
            }
            for ((class, text), p) in CLASSES.iter().zip(case.exploits).zip(&bad) {
                let ratio = p.q() / good.q();
                by_class[CLASSES.iter().position(|c| c == class).unwrap()].push(ratio);
                eprintln!("  {class}: q {:.3} ({ratio:.2} of faithful) {p:?}", p.q());
                if ratio > 0.6 {
                    failures.push(format!(
                        "{title}: {class} scores {ratio:.2} × faithful: {text:?}"
                    ));
                }
            }
        }
    }
    for (class, ratios) in CLASSES.iter().zip(&by_class) {
        let max = ratios.iter().copied().fold(0.0, f64::max);
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        eprintln!("| {class} | {mean:.2} | {max:.2} |");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
