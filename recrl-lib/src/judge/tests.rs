//! Unit tests of the judge on two small hand-built catalogues (films as ml-100k stores them,
//! books as Book-Crossing does), with real bad replies of trained policies as false cases.

use super::text::{ends_sentence, ends_with_abbreviation, flesch, syllables, tokens};
use super::{artefact::artefacts, template, Judge, Rates, Verdict};
use crate::data::{Dataset, DatasetName, ItemMeta};

fn film(title: &str, year: i32, genres: &str) -> ItemMeta {
    ItemMeta {
        title: title.to_string(),
        year: Some(year),
        genres: genres.split_whitespace().map(str::to_string).collect(),
        ..ItemMeta::default()
    }
}

fn book(title: &str, author: &str, year: i32) -> ItemMeta {
    ItemMeta {
        title: title.to_string(),
        author: Some(author.to_string()),
        year: Some(year),
        ..ItemMeta::default()
    }
}

fn catalogue(name: DatasetName, items: Vec<ItemMeta>) -> Dataset {
    let n = items.len();
    let mut ds = Dataset::from_sequences(name, &[vec![1, 2, 3]], n).unwrap();
    for (i, m) in items.into_iter().enumerate() {
        ds.items[i + 1] = m;
    }
    ds
}

// Film ids.
const GOLDENEYE: u32 = 1;
const TOMORROW: u32 = 2;
const DIE_HARD: u32 = 3;
const AMITYVILLE: u32 = 4;
const STRIPTEASE: u32 = 5;
const TOY_STORY: u32 = 6;
const USUAL_SUSPECTS: u32 = 7;
const HEAT: u32 = 8;
const STAR_WARS: u32 = 9;
const CASABLANCA: u32 = 11;
const SCHINDLER: u32 = 12;
const MYSTERY_MEN: u32 = 13;
const TRUE_ROMANCE: u32 = 14;
const DIE_HARD_2: u32 = 15;

/// A film catalogue as `data::movielens` stores ml-100k (genres as RecBole writes them, titles
/// with their article moved to the front).
fn films() -> Dataset {
    catalogue(
        DatasetName::Ml100k,
        vec![
            film("GoldenEye", 1995, "Action Adventure Thriller"),
            film("Tomorrow Never Dies", 1997, "Action Romance Thriller"),
            film("Die Hard", 1988, "Action Thriller"),
            film("The Amityville Horror", 1979, "Horror"),
            film("Striptease", 1996, "Comedy Crime"),
            film("Toy Story", 1995, "Animation Children's Comedy"),
            film("The Usual Suspects", 1995, "Crime Thriller"),
            film("Heat", 1995, "Action Crime Thriller"),
            film("Star Wars", 1977, "Action Adventure Romance Sci-Fi War"),
            film("Fargo", 1996, "Crime Drama Thriller"),
            film("Casablanca", 1942, "Drama Romance War"),
            film("Schindler's List", 1993, "Drama War"),
            film("Mystery Men", 1999, "Action Comedy Fantasy"),
            film("True Romance", 1993, "Action Crime Romance"),
            film("Die Hard 2", 1990, "Action Thriller"),
            film(
                "2001: A Space Odyssey",
                1968,
                "Drama Mystery Sci-Fi Thriller",
            ),
            film("The Maltese Falcon", 1941, "Film-Noir Mystery"),
            film("Hoop Dreams", 1994, "Documentary"),
            film("Unforgiven", 1992, "Western"),
            film("The Sound of Music", 1965, "Musical"),
        ],
    )
}

// Book ids.
const ALIBI: u32 = 1;
const DA_VINCI: u32 = 3;
const POTTER: u32 = 4;
const GREEN_MILE: u32 = 5;
const ANGELS: u32 = 6;
const BRIDGET: u32 = 9;
const NEXT_YEAR: u32 = 10;

/// A book catalogue as `data::others` stores Book-Crossing: raw titles with series and format
/// notes, authors, years, no genres.
fn books() -> Dataset {
    catalogue(
        DatasetName::Bookcrossing,
        vec![
            book(
                "A Is for Alibi (Kinsey Millhone Mysteries (Paperback))",
                "Sue Grafton",
                1987,
            ),
            book(
                "B Is for Burglar (Kinsey Millhone Mysteries (Paperback))",
                "Sue Grafton",
                1986,
            ),
            book("THE DA VINCI CODE", "Dan Brown", 2003),
            book(
                "Harry Potter and the Sorcerer's Stone (Book 1)",
                "J. K. Rowling",
                1998,
            ),
            book("The Green Mile", "Stephen King", 1996),
            book("Angels & Demons", "Dan Brown", 2000),
            book("The Lovely Bones: A Novel", "Alice Sebold", 2002),
            book("Wild Animus", "Rich Shapero", 2004),
            book("Bridget Jones's Diary", "Helen Fielding", 1999),
            book(
                "WAIT TILL NEXT YEAR: A MEMOIR",
                "Doris Kearns Goodwin",
                1997,
            ),
        ],
    )
}

fn has(v: &Verdict, part: &str) -> bool {
    v.flags.iter().any(|f| f.contains(part))
}

fn assert_clean(v: &Verdict, text: &str) {
    assert!(
        v.faithful && v.complete && !v.artefact,
        "{text:?} should pass: {:?}",
        v.flags
    );
}

// ---------------------------------------------------------------- the real bad replies

#[test]
fn real_list_template_reply_fails_every_check() {
    let ds = films();
    let j = Judge::new(&ds);
    let text = "You may enjoy: Tomorrow Never Dies (1997) \nYou may also enjoy: Die Hard: The Amityville Horror (1979) \nYou may";
    let v = j.judge(text, TOMORROW, &[GOLDENEYE]);
    assert!(!v.faithful && !v.complete && v.artefact, "{:?}", v.flags);
    assert!(
        has(&v, "contradiction: year 1979 is not the year"),
        "{:?}",
        v.flags
    );
    assert!(has(&v, "invented title: \"Die Hard\""), "{:?}", v.flags);
    assert!(
        has(&v, "invented title: \"Amityville Horror\""),
        "{:?}",
        v.flags
    );
    assert!(
        !has(&v, "year 1997"),
        "1997 is the item's year: {:?}",
        v.flags
    );
    assert!(has(&v, "cut: no sentence end"));
    assert!(has(&v, "artefact: bracketed year (1997)"), "{:?}", v.flags);
    assert!(
        has(&v, "artefact: list template \"You may also enjoy:\""),
        "{:?}",
        v.flags
    );
    assert!(
        has(&v, "a line starting \"You may enjoy:\""),
        "{:?}",
        v.flags
    );
    assert!(has(&v, "two or more \"You may …:\" lines"), "{:?}", v.flags);
}

#[test]
fn real_repeated_digits_reply_fails() {
    let ds = films();
    let j = Judge::new(&ds);
    let text = "You may enjoy Striptease (1996) 3.3.3.3, which is a comedy crime drama";
    let v = j.judge(text, STRIPTEASE, &[TOY_STORY]);
    assert!(!v.faithful && !v.complete && v.artefact, "{:?}", v.flags);
    assert!(has(&v, "genre \"drama\" (Drama)"), "{:?}", v.flags);
    assert!(!has(&v, "(Comedy)") && !has(&v, "(Crime)"), "{:?}", v.flags);
    assert!(
        has(&v, "artefact: repeated digits 3.3.3.3"),
        "{:?}",
        v.flags
    );
    // With a drama in the history, the same words are faithful.
    let v = j.judge(text, STRIPTEASE, &[SCHINDLER]);
    assert!(v.faithful, "{:?}", v.flags);
}

#[test]
fn real_raw_book_fields_reply_fails() {
    let ds = books();
    let j = Judge::new(&ds);
    let text = "You may enjoy A Is for Alibi (Kinsey Millhone Mysteries (Paperback)), ISBN 0451208471, a mystery by Sue Grafton.";
    let v = j.judge(text, ALIBI, &[GREEN_MILE]);
    assert!(v.faithful && v.complete && v.artefact, "{:?}", v.flags);
    assert!(
        has(&v, "artefact: ISBN-like digit run 0451208471"),
        "{:?}",
        v.flags
    );
    assert!(has(&v, "artefact: format in brackets"), "{:?}", v.flags);
    assert!(has(&v, "artefact: nested brackets"), "{:?}", v.flags);
}

// ---------------------------------------------------------------- faithful replies

#[test]
fn hand_written_film_explanations_pass() {
    let ds = films();
    let j = Judge::new(&ds);
    for (text, item, history) in [
        (
            "Since you loved GoldenEye, Tomorrow Never Dies is another action-packed Bond thriller from 1997, with a touch of romance.",
            TOMORROW,
            vec![GOLDENEYE],
        ),
        (
            "If you liked The Usual Suspects, Heat is a gripping crime thriller from the '90s you will enjoy!",
            HEAT,
            vec![USUAL_SUSPECTS],
        ),
        (
            "Toy Story is a funny animated family film, perfect after \"Star Wars\". 😊",
            TOY_STORY,
            vec![STAR_WARS],
        ),
        (
            "After Striptease, Mystery Men is another comedy from 1999.",
            MYSTERY_MEN,
            vec![STRIPTEASE],
        ),
        (
            "Tomorrow Never Dies mixes action with true romance, much like GoldenEye.",
            TOMORROW,
            vec![GOLDENEYE],
        ),
        (
            "Fans of Tom Hanks and of the heat of a chase will like this one; it has a great musical score.",
            TOMORROW,
            vec![GOLDENEYE],
        ),
    ] {
        assert_clean(&j.judge(text, item, &history), text);
    }
}

#[test]
fn hand_written_book_explanations_pass() {
    let ds = books();
    let j = Judge::new(&ds);
    for (text, item, history) in [
        (
            "Since you enjoyed Angels & Demons, The Da Vinci Code by Dan Brown is a gripping mystery from 2003.",
            DA_VINCI,
            vec![ANGELS],
        ),
        (
            "Fans of Stephen King will enjoy A Is for Alibi by Sue Grafton, a clever detective story.",
            ALIBI,
            vec![GREEN_MILE],
        ),
        (
            "If you liked Harry Potter, Dan Brown's The Da Vinci Code is another page-turner by Brown.",
            DA_VINCI,
            vec![POTTER],
        ),
        (
            "Like The Green Mile, this thriller from 2003 keeps you reading.",
            DA_VINCI,
            vec![GREEN_MILE],
        ),
    ] {
        assert_clean(&j.judge(text, item, &history), text);
    }
}

// ---------------------------------------------------------------- faithfulness, check by check

#[test]
fn years_must_be_the_item_or_history_years() {
    let ds = films();
    let j = Judge::new(&ds);
    let ok = j.judge(
        "A 1997 spy thriller, like 1995's GoldenEye.",
        TOMORROW,
        &[GOLDENEYE],
    );
    assert!(ok.faithful, "{:?}", ok.flags);
    let bad = j.judge(
        "A 1999 spy thriller, like GoldenEye.",
        TOMORROW,
        &[GOLDENEYE],
    );
    assert!(!bad.faithful && has(&bad, "year 1999"), "{:?}", bad.flags);
    let bad = j.judge("Like 1994's GoldenEye.", TOMORROW, &[GOLDENEYE]);
    assert!(has(&bad, "year 1994"), "{:?}", bad.flags);
    // Numbers outside 1880-2030 are not years.
    let ok = j.judge("It has 3000 stunts.", TOMORROW, &[GOLDENEYE]);
    assert!(ok.faithful, "{:?}", ok.flags);
    // A number in a listed title is not a year claim.
    let ok = j.judge(
        "Like 2001: A Space Odyssey, Star Wars is a sci-fi classic.",
        STAR_WARS,
        &[16],
    );
    assert!(ok.faithful, "{:?}", ok.flags);
}

#[test]
fn decades_must_contain_an_item_or_history_year() {
    let ds = films();
    let j = Judge::new(&ds);
    for ok in [
        "A '90s spy thriller.",
        "A spy thriller of the 1990s.",
        "A spy thriller of the 90s.",
        "A spy thriller of the 1990's.",
    ] {
        let v = j.judge(ok, TOMORROW, &[GOLDENEYE]);
        assert!(v.faithful, "{ok}: {:?}", v.flags);
    }
    for bad in [
        "A classic of the 1970s.",
        "A classic of the ’70s.",
        "A classic of the 1970's.",
    ] {
        let v = j.judge(bad, TOMORROW, &[GOLDENEYE]);
        assert!(
            !v.faithful && has(&v, "decade 1970s"),
            "{bad}: {:?}",
            v.flags
        );
    }
    // "in their 70s" is an age, not a decade.
    let v = j.judge("Two agents in their 70s.", TOMORROW, &[GOLDENEYE]);
    assert!(v.faithful, "{:?}", v.flags);
}

#[test]
fn genre_words_must_be_item_or_history_genres() {
    let ds = films();
    let j = Judge::new(&ds);
    for (bad, genre) in [
        ("A hilarious comedy.", "(Comedy)"),
        ("A science fiction ride.", "(Sci-Fi)"),
        ("A sci-fi ride.", "(Sci-Fi)"),
        ("A classic war film.", "(War)"),
        ("A stylish film noir.", "(Film-Noir)"),
        ("A great family movie.", "(Children's)"),
        ("A chilling horror story.", "(Horror)"),
        ("An animated spy story.", "(Animation)"),
        ("A moving documentary.", "(Documentary)"),
        ("A classic western.", "(Western)"),
        ("A tense mystery.", "(Mystery)"),
    ] {
        let v = j.judge(bad, TOMORROW, &[GOLDENEYE]);
        assert!(!v.faithful && has(&v, genre), "{bad}: {:?}", v.flags);
    }
    for ok in [
        "A romantic spy thriller full of action and adventure.",
        "A funny and exciting ride.",
        "A war between spies and a media baron.",
        "A great musical score.",
        "A hero of Western culture.",
    ] {
        let v = j.judge(ok, TOMORROW, &[GOLDENEYE]);
        assert!(v.faithful, "{ok}: {:?}", v.flags);
    }
    // A genre word inside a listed title is part of the title, not a claim.
    let v = j.judge(
        "After Striptease, Mystery Men is another comedy.",
        MYSTERY_MEN,
        &[STRIPTEASE],
    );
    assert!(v.faithful, "{:?}", v.flags);
    let v = j.judge(
        "After Striptease, this mystery comedy.",
        MYSTERY_MEN,
        &[STRIPTEASE],
    );
    assert!(!v.faithful && has(&v, "(Mystery)"), "{:?}", v.flags);
    // History genres count: Star Wars is Sci-Fi.
    let v = j.judge("A sci-fi fan's spy thriller.", TOMORROW, &[STAR_WARS]);
    assert!(v.faithful, "{:?}", v.flags);
}

#[test]
fn genres_are_not_checked_without_catalogue_genres() {
    let ds = books();
    let j = Judge::new(&ds);
    let v = j.judge("A hilarious sci-fi comedy.", DA_VINCI, &[ANGELS]);
    assert!(v.faithful, "{:?}", v.flags);
}

#[test]
fn catalogue_titles_outside_the_prompt_are_invented() {
    let ds = films();
    let j = Judge::new(&ds);
    let bad = j.judge(
        "If you liked GoldenEye, you will love The Usual Suspects.",
        TOMORROW,
        &[GOLDENEYE],
    );
    assert!(
        !bad.faithful && has(&bad, "invented title: \"Usual Suspects\""),
        "{:?}",
        bad.flags
    );
    let ok = j.judge(
        "If you liked The Usual Suspects, you will love Tomorrow Never Dies.",
        TOMORROW,
        &[USUAL_SUSPECTS],
    );
    assert!(ok.faithful, "{:?}", ok.flags);
    // Title case marks a title; the same words in prose do not.
    let bad = j.judge("It mixes action with True Romance.", TOMORROW, &[GOLDENEYE]);
    assert!(
        has(&bad, "invented title: \"True Romance\""),
        "{:?}",
        bad.flags
    );
    let ok = j.judge(
        "It mixes action with True Romance.",
        TOMORROW,
        &[TRUE_ROMANCE],
    );
    assert!(ok.faithful, "{:?}", ok.flags);
    // A one-word title counts only in quotes.
    let bad = j.judge("If you liked \"Heat\", try this.", TOMORROW, &[GOLDENEYE]);
    assert!(has(&bad, "invented title: \"Heat\""), "{:?}", bad.flags);
    let ok = j.judge(
        "Feel the heat of the chase. Heat rises.",
        TOMORROW,
        &[GOLDENEYE],
    );
    assert!(ok.faithful, "{:?}", ok.flags);
    // A longer catalogue title wins over the listed title it starts with.
    let ok = j.judge("If you liked Die Hard, try this.", TOMORROW, &[DIE_HARD]);
    assert!(ok.faithful, "{:?}", ok.flags);
    let bad = j.judge("If you liked Die Hard 2, try this.", TOMORROW, &[DIE_HARD]);
    assert!(
        has(&bad, "invented title: \"Die Hard 2\""),
        "{:?}",
        bad.flags
    );
    let ok = j.judge(
        "If you liked Die Hard 2, try this.",
        TOMORROW,
        &[DIE_HARD_2],
    );
    assert!(ok.faithful, "{:?}", ok.flags);
    // Words of a named title are no genre claims, even of an invented title.
    let bad = j.judge(
        "Like The Amityville Horror, but fun.",
        TOMORROW,
        &[DIE_HARD],
    );
    assert!(
        has(&bad, "invented title: \"Amityville Horror\""),
        "{:?}",
        bad.flags
    );
    assert!(!has(&bad, "(Horror)"), "{:?}", bad.flags);
    let ok = j.judge(
        "Like The Amityville Horror, but fun.",
        TOMORROW,
        &[AMITYVILLE],
    );
    assert!(ok.faithful, "{:?}", ok.flags);
}

#[test]
fn titles_stored_with_a_trailing_article_match() {
    let mut ds = films();
    ds.items[USUAL_SUSPECTS as usize].title = "Usual Suspects, The".into();
    let j = Judge::new(&ds);
    let bad = j.judge("You will love The Usual Suspects.", TOMORROW, &[GOLDENEYE]);
    assert!(
        has(&bad, "invented title: \"Usual Suspects\""),
        "{:?}",
        bad.flags
    );
    let ok = j.judge(
        "You will love The Usual Suspects.",
        USUAL_SUSPECTS,
        &[GOLDENEYE],
    );
    assert!(ok.faithful, "{:?}", ok.flags);
}

#[test]
fn uncatalogued_titles_after_like_or_in_quotes_are_invented() {
    let ds = films();
    let j = Judge::new(&ds);
    for bad in [
        "A spy thriller similar to The Spy Who Loved Me.",
        "A spy thriller in the vein of \"Licence to Kill\".",
        "Big action, like The Matrix.",
        "Spy films such as From Russia with Love.",
        // A known title extended by words of its own: a sequel or subtitle nobody made.
        "Tomorrow Never Dies and its sequel \"Tomorrow Never Dies: The Return\".",
        "Then watch \"GoldenEye Reloaded\".",
        "Spy films such as GoldenEye: The Last Mission.",
    ] {
        let v = j.judge(bad, TOMORROW, &[GOLDENEYE]);
        assert!(
            !v.faithful && has(&v, "in no listed or catalogued title"),
            "{bad}: {:?}",
            v.flags
        );
    }
    for ok in [
        "If you like Tom Hanks, you may like Tomorrow Never Dies.",
        "Feels like GoldenEye with a bigger budget.",
        "A spy thriller \"with a twist\".",
        "Like Bond and Moneypenny, it is fun.",
        "Fans of \"GoldenEye\" and \"Tomorrow Never Dies\" will enjoy it.",
        "A spy thriller like GoldenEye from 1995.",
    ] {
        let v = j.judge(ok, TOMORROW, &[GOLDENEYE]);
        assert!(v.faithful, "{ok}: {:?}", v.flags);
    }
}

#[test]
fn authors_must_be_item_or_history_authors() {
    let ds = books();
    let j = Judge::new(&ds);
    let bad = j.judge(
        "If you liked Angels & Demons, The Da Vinci Code by Stephen King is for you.",
        DA_VINCI,
        &[ANGELS],
    );
    assert!(
        !bad.faithful && has(&bad, "author \"Stephen King\""),
        "{:?}",
        bad.flags
    );
    let bad = j.judge(
        "The Da Vinci Code by Tom Clancy is a thriller.",
        DA_VINCI,
        &[ANGELS],
    );
    assert!(
        !bad.faithful && has(&bad, "\"by Tom Clancy\""),
        "{:?}",
        bad.flags
    );
    let bad = j.judge(
        "A mystery in the style of Helen Fielding.",
        DA_VINCI,
        &[ANGELS],
    );
    assert!(has(&bad, "author \"Helen Fielding\""), "{:?}", bad.flags);
    let ok = j.judge(
        "A mystery in the style of Helen Fielding.",
        DA_VINCI,
        &[BRIDGET],
    );
    assert!(ok.faithful, "{:?}", ok.flags);
    // Initials and surnames alone agree with "J. K. Rowling".
    for ok in [
        "Harry Potter and the Sorcerer's Stone by J.K. Rowling is magical.",
        "Harry Potter and the Sorcerer's Stone by Rowling is magical.",
    ] {
        let v = j.judge(ok, POTTER, &[ANGELS]);
        assert!(v.faithful, "{ok}: {:?}", v.flags);
    }
    // Films have no authors: "by" is not checked there.
    let films = films();
    let jf = Judge::new(&films);
    let v = jf.judge(
        "Tomorrow Never Dies, directed by Roger Spottiswoode.",
        TOMORROW,
        &[GOLDENEYE],
    );
    assert!(v.faithful, "{:?}", v.flags);
}

#[test]
fn book_titles_match_without_their_series_and_subtitles() {
    let ds = books();
    let j = Judge::new(&ds);
    let bad = j.judge("You may love The Lovely Bones too.", DA_VINCI, &[ANGELS]);
    assert!(
        has(&bad, "invented title: \"Lovely Bones\""),
        "{:?}",
        bad.flags
    );
    let ok = j.judge("You may love The Lovely Bones too.", 7, &[ANGELS]);
    assert!(ok.faithful, "{:?}", ok.flags);
    let bad = j.judge(
        "If you liked A Is for Alibi, try this.",
        DA_VINCI,
        &[ANGELS],
    );
    assert!(has(&bad, "invented title"), "{:?}", bad.flags);
    // Part of a listed title (the series) is not invented.
    let ok = j.judge(
        "A Kinsey Millhone Mysteries fan will like it.",
        ALIBI,
        &[ANGELS],
    );
    assert!(ok.faithful, "{:?}", ok.flags);
}

#[test]
fn naming_a_listed_title_verbatim_is_no_artefact() {
    let ds = books();
    let j = Judge::new(&ds);
    let text = "Since you liked Wait Till Next Year: A Memoir, try The Da Vinci Code.";
    let ok = j.judge(text, DA_VINCI, &[NEXT_YEAR]);
    assert_clean(&ok, text);
    // The same words for a user who did not read it: a field label and an invented title.
    let bad = j.judge(text, DA_VINCI, &[ANGELS]);
    assert!(has(&bad, "field label \"Year:\""), "{:?}", bad.flags);
    assert!(
        has(&bad, "invented title: \"Wait Till Next Year"),
        "{:?}",
        bad.flags
    );
    // The bracketed series and format of a listed title stay artefacts.
    let raw = "You may enjoy A Is for Alibi (Kinsey Millhone Mysteries (Paperback)).";
    let v = j.judge(raw, ALIBI, &[]);
    assert!(v.faithful && has(&v, "format in brackets"), "{:?}", v.flags);
}

#[test]
fn each_reason_is_reported_once() {
    let ds = films();
    let j = Judge::new(&ds);
    let v = j.judge("Heat (1999) and Heat (1999) again.", HEAT, &[]);
    let years = v.flags.iter().filter(|f| f.contains("year 1999")).count();
    let brackets = v.flags.iter().filter(|f| f.contains("(1999)")).count();
    assert_eq!((years, brackets), (1, 1), "{:?}", v.flags);
}

// ---------------------------------------------------------------- completeness

#[test]
fn completeness_needs_a_sentence_end() {
    for ok in [
        "A fine film.",
        "A fine film!",
        "Is it a fine film?",
        "A fine film.\n",
        "He said \"a fine film.\"",
        "A fine film (really).",
        "A fine film. 😊",
        "A fine film! 🎬🍿",
        "A fine film…",
    ] {
        assert!(ends_sentence(ok), "{ok:?}");
    }
    for cut in [
        "",
        "   ",
        "A fine film",
        "You may enjoy: Tomorrow Never Dies (1997) \nYou may",
        "A fine film, with",
        "😊",
    ] {
        assert!(!ends_sentence(cut), "{cut:?}");
    }
}

#[test]
fn a_period_after_an_initial_or_an_abbreviation_ends_no_sentence() {
    assert_eq!(ends_with_abbreviation("A book by J. K."), Some(14));
    for cut in [
        "A book by J. K.",
        "A novel by J.K.",
        "Starring Mr.",
        "Written with Dr. ",
    ] {
        assert!(ends_with_abbreviation(cut).is_some(), "{cut:?}");
    }
    for ok in [
        "A fine film.",
        "It stars Tom Hanks.",
        "A film from 1995.",
        "A book by J. K. Rowling.",
        "Plan A is fine!",
        "Try the DVD.",
    ] {
        assert!(ends_with_abbreviation(ok).is_none(), "{ok:?}");
    }
    let ds = catalogue(
        DatasetName::Ml100k,
        vec![
            film("Malcolm X", 1992, "Drama"),
            film("Heat", 1995, "Action Crime Thriller"),
            film("Fargo", 1996, "Crime Drama Thriller"),
        ],
    );
    let j = Judge::new(&ds);
    let v = j.judge("Since you liked Heat, you may like Malcolm X.", 1, &[2]);
    assert!(v.complete, "a title ends there: {:?}", v.flags);
    let v = j.judge(
        "Since you liked Heat, you may like this drama by Spike L.",
        1,
        &[2],
    );
    assert!(
        !v.complete && has(&v, "cut: no sentence end"),
        "{:?}",
        v.flags
    );
}

// ---------------------------------------------------------------- artefacts

#[test]
fn each_artefact_has_a_true_and_a_false_case() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "Heat (1995) is great.",
            "Heat, from 1995, is great.",
            "bracketed year",
        ),
        (
            "It is out (Paperback).",
            "It is out in paperback.",
            "format in brackets",
        ),
        (
            "It (Mass Market Paperback) is out.",
            "A mass market hit.",
            "format in brackets",
        ),
        (
            "A (Series (Book 1)) novel.",
            "A (series) novel.",
            "nested brackets",
        ),
        (
            "ISBN 0451208471 is it.",
            "It sold 1,000,000 copies.",
            "ISBN-like",
        ),
        (
            "Its ISBN is 080213825X.",
            "Its code is 12345678.",
            "ISBN-like",
        ),
        (
            "genres: Action, Crime.",
            "Its genre is action.",
            "field label",
        ),
        (
            "Author: Sue Grafton.",
            "The author is Sue Grafton.",
            "field label",
        ),
        (
            "Action|Crime|Thriller.",
            "Action and/or crime.",
            "pipe-separated",
        ),
        (
            "You may also enjoy: Heat.",
            "You may also enjoy it.",
            "list template",
        ),
        (
            "You may enjoy: Heat.",
            "Heat is what you may enjoy.",
            "list template",
        ),
        (
            "- Heat\n- Casino",
            "Heat - a classic.",
            "bullet or numbered",
        ),
        (
            "1. Heat\n2. Casino",
            "In 1995, Heat came out.",
            "bullet or numbered",
        ),
        (
            "Rated 3.3.3.3 stars.",
            "Rated 3.5 stars.",
            "repeated digits",
        ),
        (
            "Rated 1111 times.",
            "Rated 10000 times in 1995.",
            "repeated digits",
        ),
        ("Great!!!!", "Great!", "repeated punctuation"),
        ("Great.....", "Great...", "repeated punctuation"),
    ];
    for (bad, ok, what) in cases {
        let b = artefacts(bad);
        assert!(
            b.iter().any(|f| f.contains(what)),
            "{bad:?} should show {what}: {b:?}"
        );
        let o = artefacts(ok);
        assert!(o.is_empty(), "{ok:?} should be clean: {o:?}");
    }
    let two = artefacts("You may like these: Heat.\nYou might also love: Casino.");
    assert!(two.iter().any(|f| f.contains("two or more")), "{two:?}");
}

// ---------------------------------------------------------------- readability

#[test]
fn syllables_count_vowel_groups() {
    for (w, n) in [
        ("the", 1),
        ("make", 1),
        ("table", 2),
        ("people", 2),
        ("free", 1),
        ("beautiful", 3),
        ("recommendation", 5),
        ("adventure", 3),
        ("memorable", 4),
        ("rhythm", 1),
        ("a", 1),
    ] {
        assert_eq!(syllables(w), n, "{w}");
    }
}

#[test]
fn flesch_reading_ease_is_the_textbook_formula() {
    // 11 words, 1 sentence, 22 syllables: 206.835 - 1.015*11 - 84.6*2 = 26.47.
    let text = "Tomorrow Never Dies is an exciting spy adventure with memorable villains.";
    assert_eq!(tokens(text).len(), 11);
    assert!((flesch(text) - 26.47).abs() < 1e-9, "{}", flesch(text));
    // Two sentences halve the words per sentence: + 1.015 * 5.5.
    let two = "Tomorrow Never Dies is an exciting spy. Adventure with memorable villains.";
    assert!(
        (flesch(two) - (26.47 + 1.015 * 5.5)).abs() < 1e-9,
        "{}",
        flesch(two)
    );
    // Clamped to [0, 100], NaN without words.
    assert_eq!(flesch("The cat sat on the mat."), 100.0);
    assert_eq!(
        flesch("Recommendation algorithms personalise entertainment."),
        0.0
    );
    assert!(flesch("").is_nan() && flesch("... 1995 !").is_nan());
}

// ---------------------------------------------------------------- rates and the template

#[test]
fn rates_are_shares_and_a_nan_free_mean() {
    let v = |faithful, complete, artefact, readability| Verdict {
        faithful,
        complete,
        artefact,
        readability,
        flags: Vec::new(),
    };
    let r = Rates::of(&[
        v(true, true, false, 60.0),
        v(false, true, true, f64::NAN),
        v(true, false, false, 40.0),
        v(true, true, false, 80.0),
    ]);
    assert_eq!(r.n, 4);
    assert_eq!(r.faithfulness, 0.75);
    assert_eq!(r.completeness, 0.75);
    assert_eq!(r.artefact, 0.25);
    assert_eq!(r.readability, 60.0);
    let none = Rates::of(&[]);
    assert_eq!(none.n, 0);
    assert!(none.faithfulness.is_nan() && none.readability.is_nan());
    assert_eq!(
        v(true, false, true, 50.0).per_measure(),
        [
            ("faithfulness", 1.0),
            ("completeness", 0.0),
            ("artefact", 1.0),
            ("readability", 50.0)
        ]
    );
}

#[test]
fn the_template_passes_the_judge_on_films() {
    let ds = films();
    let j = Judge::new(&ds);
    assert_eq!(
        template(&ds, TOMORROW, &[DIE_HARD, GOLDENEYE]),
        "Since you enjoyed GoldenEye, you may like Tomorrow Never Dies, an action, romance and thriller film from 1997."
    );
    assert_eq!(
        template(&ds, TOY_STORY, &[]),
        "You may like Toy Story, an animation, children's and comedy film from 1995."
    );
    for item in 1..=ds.n_items() as u32 {
        for history in [vec![], vec![item % 20 + 1], vec![SCHINDLER, CASABLANCA]] {
            let t = template(&ds, item, &history);
            assert_clean(&j.judge(&t, item, &history), &t);
        }
    }
    // Missing parts are dropped.
    let mut bare = films();
    bare.items[HEAT as usize].genres.clear();
    bare.items[HEAT as usize].year = None;
    assert_eq!(template(&bare, HEAT, &[]), "You may like Heat.");
}

#[test]
fn the_template_passes_the_judge_on_books() {
    let ds = books();
    let j = Judge::new(&ds);
    assert_eq!(
        template(&ds, ALIBI, &[ANGELS]),
        "Since you enjoyed Angels & Demons, you may like A Is for Alibi by Sue Grafton, from 1987."
    );
    for item in 1..=ds.n_items() as u32 {
        for history in [vec![], vec![item % 10 + 1], vec![POTTER, ALIBI]] {
            let t = template(&ds, item, &history);
            assert_clean(&j.judge(&t, item, &history), &t);
        }
    }
}

/// The judge on the real catalogues (`data/raw/ml-100k` and `data/raw/bookcrossing`, processed
/// with the default 5-core): the template passes for every item, and judging a few thousand
/// replies takes well under a second. Needs the raw files:
/// `cargo test -p recrl-lib --release --lib judge::tests::real -- --ignored --nocapture`.
#[test]
#[ignore]
fn real_catalogues() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for name in [DatasetName::Ml100k, DatasetName::Bookcrossing] {
        let dir = root.join("data/raw").join(name.as_str());
        let raw = crate::data::load_raw(name, &dir, crate::data::MAX_MALFORMED).unwrap();
        let ds = Dataset::from_raw(name, &raw, 0.0, 5);
        let t0 = std::time::Instant::now();
        let j = Judge::new(&ds);
        let built = t0.elapsed().as_secs_f64();
        let n = ds.n_items() as u32;
        let mut failures = Vec::new();
        let t1 = std::time::Instant::now();
        let mut judged = 0usize;
        for item in 1..=n {
            let history = [(item * 7919) % n + 1, (item * 104_729) % n + 1];
            let t = template(&ds, item, &history);
            let v = j.judge(&t, item, &history);
            judged += 1;
            if !(v.faithful && v.complete && !v.artefact) {
                failures.push(format!("{t} -> {:?}", v.flags));
            }
        }
        let per = t1.elapsed().as_secs_f64() / judged as f64;
        println!(
            "{name}: {} items, {} title keys, {} author keys; index built in {built:.3}s; {judged} template replies judged, {:.1} µs each; {} failures",
            n,
            j.catalogue().titles.len(),
            j.catalogue().authors.len(),
            per * 1e6,
            failures.len()
        );
        for f in failures.iter().take(20) {
            println!("  {f}");
        }
        assert!(failures.is_empty());
        assert!(per < 1e-3, "{per} s per reply");
    }
}
