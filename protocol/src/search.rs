//! What a `search` text matches: its words, in order, as whole words, without regard to
//! case or diacritics. A word is a run of letters and digits, lowercased, its combining
//! marks dropped (`é` is `e`, `ά` is `α`, Arabic and Hebrew vowel marks go, as do the vowel
//! signs of Indic scripts). The server's full-text index, its scans, the Redis store's
//! search and the terminal client's search of its own scrollback all split texts this way,
//! so they find the same messages: the index is given [`index_text`] (the words, spaced),
//! never the raw text, so its tokenizer (SQLite FTS5's `unicode61`, which would split words
//! at Indic vowel signs and keep Greek accents) decides nothing.
//!
//! Chinese, Japanese, Korean, Thai, Lao, Khmer and Myanmar are written without spaces between
//! words, so a run of their characters would be one "word" and `東京` would not be found in
//! `東京タワー`: each of their characters ([`spaced`]) is a word of its own, so a phrase of
//! them is found wherever its characters stand together.

use std::borrow::Cow;

use unicode_normalization::char::{decompose_canonical, is_combining_mark};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// A search text with at least one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    text: String,
    words: Vec<String>,
}

impl Phrase {
    /// None when the text has no word (only punctuation or spaces): it matches nothing.
    pub fn new(text: &str) -> Option<Phrase> {
        let words = words(text);
        (!words.is_empty()).then(|| Phrase {
            text: text.to_owned(),
            words,
        })
    }

    /// The text as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its words ([`words`]), at least one.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Whether `text` holds the phrase's words one after another.
    pub fn matches(&self, text: &str) -> bool {
        let found = words(text);
        found
            .windows(self.words.len())
            .any(|w| w == self.words.as_slice())
    }
}

/// The words of a text: runs of letters and digits, lowercased, without combining marks;
/// each [`spaced`] character a word of its own.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    each_word(text, |word| out.push(word.to_owned()));
    out
}

/// Calls `found` with each word of `text`, in order (see [`words`]).
fn each_word(text: &str, mut found: impl FnMut(&str)) {
    let mut word = String::new();
    // Composed first, unless it is already (most texts: the quick check answers without
    // composing anything).
    if is_nfc_quick(text.chars()) == IsNormalized::Yes {
        text.chars()
            .for_each(|c| each_char(c, &mut word, &mut found));
    } else {
        text.nfc().for_each(|c| each_char(c, &mut word, &mut found));
    }
    if !word.is_empty() {
        found(&word);
    }
}

/// One composed character of [`each_word`]: a spaced character is a word as it is written
/// composed (`각`, `が`: not their jamo or their base kana and voicing mark), as the
/// full-text index holds it ([`index_text`]); any other is decomposed and loses its marks.
fn each_char(composed: char, word: &mut String, found: &mut impl FnMut(&str)) {
    if spaced(composed) {
        if !word.is_empty() {
            found(word);
            word.clear();
        }
        let mut one = [0; 4];
        found(fold_spaced(composed).encode_utf8(&mut one));
        return;
    }
    let mut one = |c: char| {
        // Greek and Cyrillic letters without marks, the bulk of those texts, need no lookup.
        match c {
            'α'..='ω' | 'а'..='я' => {
                word.push(fold(c));
                return;
            }
            'Α'..='Ρ' | 'Σ'..='Ω' | 'А'..='Я' => {
                word.push(char::from_u32(c as u32 + 0x20).unwrap_or(c));
                return;
            }
            _ => {}
        }
        if is_combining_mark(c) {
            return;
        }
        if is_word_char(c) {
            let lower = c.to_lowercase();
            if lower.len() == 1 {
                word.extend(lower.map(fold));
            } else {
                // Lowercasing can add a mark (`İ` is `i` and a dot above): dropped too.
                word.extend(lower.filter(|l| !is_combining_mark(*l)).map(fold));
            }
        } else if !word.is_empty() {
            found(word);
            word.clear();
        }
    };
    // Nothing below U+00C0 decomposes.
    if composed < '\u{C0}' {
        one(composed);
    } else {
        decompose_canonical(composed, one);
    }
}

/// Whether `c` belongs to a word: a letter or digit, as Rust and the full-text index's
/// tokenizer (`unicode61`: categories L, N and Co) both count them. Rust also counts the
/// circled, parenthesized and squared Latin letters (`Ⓐ`, `🅿`) and a few New Tai Lue and
/// Vedic signs as letters, which the tokenizer takes for separators: separators here too.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
        && !matches!(c,
            '\u{19B0}'..='\u{19C0}' | '\u{19C8}'..='\u{19C9}' // New Tai Lue vowel and tone signs
            | '\u{1CF2}'..='\u{1CF3}' // Vedic signs
            | '\u{24B6}'..='\u{24E9}' // circled Latin letters
            | '\u{1F130}'..='\u{1F149}' // squared Latin capitals
            | '\u{1F150}'..='\u{1F169}' // negative circled Latin capitals
            | '\u{1F170}'..='\u{1F189}' // negative squared Latin capitals
        )
}

/// Whether `c` is a punctuation mark or symbol of Latin-1 (`«`, `×`), General Punctuation
/// to Miscellaneous Symbols and Arrows (`’`, `—`, `€`, `→`, `★`) or the emoji blocks: a
/// separator for [`words`] and for the tokenizer alike. (Elsewhere they may disagree: the
/// tokenizer takes private use characters, and some code points not yet assigned, for
/// letters.)
fn separator_symbol(c: char) -> bool {
    matches!(c, '\u{A0}'..='\u{BF}' | '\u{D7}' | '\u{F7}' | '\u{2000}'..='\u{2BFF}' | '\u{1F000}'..='\u{1FAFF}')
        && !c.is_alphanumeric()
        && !is_combining_mark(c)
}

/// A lowercase letter in the form the tokenizer's case folding gives it where that differs
/// from lowercasing: a final sigma is a sigma, the micro sign a mu, the long s an s, the
/// Greek symbol variants their letters.
fn fold(c: char) -> char {
    match c {
        'ς' => 'σ',
        'µ' => 'μ',
        'ſ' => 's',
        'ϐ' => 'β',
        'ϑ' => 'θ',
        'ϕ' => 'φ',
        'ϖ' => 'π',
        'ϰ' => 'κ',
        'ϱ' => 'ρ',
        'ϵ' => 'ε',
        c => c,
    }
}

/// A spaced character in the one form search compares: the compatibility ideographs
/// (U+F900 to U+FAFF) as the ideograph they stand for (their canonical decomposition); the
/// others as they are.
fn fold_spaced(c: char) -> char {
    if !('\u{F900}'..='\u{FAFF}').contains(&c) {
        return c;
    }
    let mut decomposed = std::iter::once(c).nfd();
    match (decomposed.next(), decomposed.next()) {
        (Some(one), None) => one,
        _ => c,
    }
}

/// Whether `c` is of a script written without spaces between words, so that each of its
/// characters is a word for search: Han ideographs (with their extensions and
/// compatibility forms), hiragana, katakana (half-width too), Hangul (syllables, and the
/// jamo they decompose into), Thai, Lao, Khmer and Myanmar. Their combining marks (Thai's
/// vowel and tone marks, for one) are not words: they are dropped, as everywhere.
pub fn spaced(c: char) -> bool {
    matches!(c,
        '\u{0E00}'..='\u{0EFF}' // Thai, Lao
        | '\u{1000}'..='\u{109F}' // Myanmar
        | '\u{1100}'..='\u{11FF}' // Hangul jamo
        | '\u{1780}'..='\u{17FF}' // Khmer
        | '\u{19E0}'..='\u{19FF}' // Khmer symbols
        | '\u{3040}'..='\u{30FF}' // hiragana, katakana
        | '\u{31F0}'..='\u{31FF}' // katakana phonetic extensions
        | '\u{3400}'..='\u{4DBF}' // Han extension A
        | '\u{4E00}'..='\u{9FFF}' // Han
        | '\u{A960}'..='\u{A97F}' // Hangul jamo extended A
        | '\u{A9E0}'..='\u{A9FF}' // Myanmar extended B
        | '\u{AA60}'..='\u{AA7F}' // Myanmar extended A
        | '\u{AC00}'..='\u{D7FF}' // Hangul syllables, jamo extended B
        | '\u{F900}'..='\u{FAFF}' // Han compatibility
        | '\u{FF66}'..='\u{FFDC}' // half-width katakana and Hangul
        | '\u{20000}'..='\u{3FFFF}' // Han extensions B and later
    ) && c.is_alphanumeric()
        && !is_combining_mark(c)
}

/// The text as the full-text index holds it: its [`words`], one space between each two, so
/// the index's tokenizer makes exactly those tokens (its case folding leaves them as they
/// are: the words are folded as it folds), whatever the script: a Greek word typed without its
/// accents, an Arabic one without its vowel marks, a phrase inside a run of Thai or Chinese
/// characters, are found by the index as by the scans. The text itself when it is ASCII, or
/// when its other characters are all separators (the tokenizer splits and folds those texts
/// as [`words`] does): most texts, let through without a copy.
pub fn index_text(text: &str) -> Cow<'_, str> {
    // Also as it is: a text whose only characters beyond ASCII are punctuation and symbols
    // of the blocks where both take them for separators (curly quotes, dashes, arrows, most
    // emoji), which the tokenizer splits as [`words`] does.
    if text.is_ascii() || text.chars().all(|c| c.is_ascii() || separator_symbol(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    each_word(text, |word| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    });
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_case_and_diacritics_and_split_on_punctuation() {
        assert_eq!(words("Café, au-lait!  42x"), ["cafe", "au", "lait", "42x"]);
        assert!(words(" \"*:^ ").is_empty());
        assert!(Phrase::new("\"*\"").is_none());
    }

    #[test]
    fn chinese_japanese_and_korean_characters_are_words_of_their_own() {
        assert_eq!(
            words("東京タワーに行くiPhone"),
            ["東", "京", "タ", "ワ", "ー", "に", "行", "く", "iphone"]
        );
        let tokyo = Phrase::new("東京").expect("words");
        assert!(tokyo.matches("明日は東京タワーに行く"));
        assert!(tokyo.matches("東京"));
        assert!(!tokyo.matches("京東"));
        assert!(Phrase::new("タワー").expect("words").matches("東京タワー"));
        assert!(Phrase::new("北京").expect("words").matches("我住在北京市"));
        assert!(!Phrase::new("上海").expect("words").matches("我住在北京市"));
        // Hangul: a syllable is found inside a word with its particle.
        let seoul = Phrase::new("서울").expect("words");
        assert!(seoul.matches("서울에서 만나요"));
        assert!(!seoul.matches("서을에서"));
        // Other scripts keep whole words.
        assert!(!Phrase::new("cat").expect("words").matches("concatenate"));
        assert_eq!(index_text("plain text"), "plain text");
        assert!(matches!(index_text("plain text"), Cow::Borrowed(_)));
        assert_eq!(index_text("東京tower"), "東 京 tower");
        assert_eq!(index_text("서울에서"), "서 울 에 서");
        // One form for the scans and the index: a Hangul syllable whole, a voiced kana
        // whole (also when typed as kana and mark), a compatibility ideograph as its
        // ideograph.
        assert_eq!(words("각"), ["각"]);
        assert!(!Phrase::new("가").expect("words").matches("각"));
        assert!(!Phrase::new("か").expect("words").matches("がっこう"));
        assert!(
            Phrase::new("が")
                .expect("words")
                .matches("か\u{3099}っこう")
        );
        assert!(!Phrase::new("ハン").expect("words").matches("パン"));
        assert!(Phrase::new("\u{8C48}").expect("words").matches("\u{F900}"));
        assert_eq!(index_text("か\u{3099}"), "が");
        assert_eq!(index_text("\u{F900}"), "\u{8C48}");
        assert_eq!(index_text("\u{1100}\u{1161}"), "가");
    }

    #[test]
    fn thai_lao_khmer_and_myanmar_characters_are_words_of_their_own() {
        // Thai's vowel and tone marks are dropped; its letters are words.
        assert_eq!(words("ครับ"), ["ค", "ร", "บ"]);
        let krap = Phrase::new("ครับ").expect("words");
        assert!(krap.matches("สวัสดีครับ"));
        assert!(!krap.matches("สวัสดีค่ะ"));
        assert!(Phrase::new("ไทย").expect("words").matches("ภาษาไทยง่าย"));
        assert!(Phrase::new("ສະບາຍ").expect("words").matches("ສະບາຍດີ")); // Lao
        assert!(Phrase::new("ខ្មែរ").expect("words").matches("ភាសាខ្មែរ")); // Khmer
        assert!(Phrase::new("မြန်မာ").expect("words").matches("မြန်မာစာ")); // Myanmar
        assert_eq!(index_text("สวัสดีครับ"), "ส ว ส ด ค ร บ");
    }

    #[test]
    fn the_index_is_given_the_words_the_scans_compare() {
        // Greek typed without its accents, a final sigma as a sigma.
        assert_eq!(words("Ελλάδας"), ["ελλαδασ"]);
        assert!(Phrase::new("ελλαδα").expect("words").matches("Η Ελλάδα!"));
        assert_eq!(index_text("Η Ελλάδα!"), "η ελλαδα");
        // Arabic and Hebrew vowel marks.
        assert!(Phrase::new("كتب").expect("words").matches("كَتَبَ الدرس"));
        assert!(Phrase::new("שלום").expect("words").matches("שָׁלוֹם"));
        assert_eq!(index_text("كَتَبَ"), "كتب");
        // Indic vowel signs do not split a word: a part of a word is not a word.
        assert_eq!(words("தமிழ் நாடு"), ["தமழ", "நட"]);
        assert!(!Phrase::new("தம").expect("words").matches("தமிழ்"));
        assert_eq!(index_text("தமிழ் நாடு"), "தமழ நட");
        // Lowercasing a dotted capital I adds a mark: dropped too.
        assert_eq!(words("İstanbul"), ["istanbul"]);
        // ASCII goes to the index as it is; any other text as its words.
        assert!(matches!(
            index_text("Plain, TEXT"),
            Cow::Borrowed("Plain, TEXT")
        ));
        assert_eq!(index_text("¡Café!"), "cafe");
        assert!(
            matches!(index_text("¿?"), Cow::Borrowed("¿?")),
            "no word, as it is"
        );
    }

    #[test]
    fn letters_split_and_fold_as_the_index_tokenizer_does() {
        // Folded as the tokenizer folds: the micro sign is a mu, the long s an s.
        assert!(Phrase::new("5μs").expect("words").matches("took 5µs"));
        assert!(Phrase::new("φ").expect("words").matches("ϕ angle"));
        assert_eq!(words("ſtraſſe"), ["strasse"]);
        // Circled and squared letters separate words, as in the tokenizer.
        assert!(Phrase::new("Ⓐ").is_none());
        assert!(
            Phrase::new("parking")
                .expect("words")
                .matches("🅿️parking here")
        );
        // Curly quotes and emoji around ASCII: the text goes to the index as it is.
        assert!(matches!(index_text("it’s “fine” 👍"), Cow::Borrowed(_)));
        assert_eq!(index_text("took 5µs"), "took 5μs");
    }

    #[test]
    fn a_phrase_is_whole_words_in_order() {
        let p = Phrase::new("brown FOX").expect("words");
        assert!(p.matches("the quick Brown fox jumps"));
        assert!(p.matches("brown, fox"));
        assert!(!p.matches("fox brown"));
        assert!(!p.matches("brownfox"));
        assert!(!p.matches("brown foxes"));
    }
}
