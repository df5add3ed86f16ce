//! A line longer than the server's text limit (its `limits` event), cut into messages at
//! word boundaries. Pure.

/// `text` in pieces of at most `max` characters, each cut at the last line break in reach,
/// else at the last space (the break or space itself dropped, as are spaces at the cut).
/// `None` when a piece has no place to cut (a word longer than `max`): the caller keeps the
/// text rather than cut a word in two.
pub fn split_at_words(text: &str, max: usize) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = text;
    // Bounded: each round takes at least one character off `rest`.
    while rest.chars().count() > max {
        let reach = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        // The break may be the character just past the reach: "abc def" at 3 cuts at the space.
        let window = &rest[..(reach + rest[reach..].chars().next().map_or(0, char::len_utf8))];
        let at = window
            .rfind('\n')
            .or_else(|| window.rfind(char::is_whitespace))?;
        let head = rest[..at].trim_end();
        if head.is_empty() {
            return None;
        }
        out.push(head.to_owned());
        rest = rest[at..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_at_words("hello", 10), Some(vec!["hello".to_owned()]));
    }

    #[test]
    fn long_text_is_cut_at_spaces_and_loses_no_word() {
        let text = "the quick brown fox jumps over the lazy dog";
        let pieces = split_at_words(text, 10).expect("cut");
        assert_eq!(
            pieces,
            ["the quick", "brown fox", "jumps over", "the lazy", "dog"]
        );
        assert!(pieces.iter().all(|p| p.chars().count() <= 10));
        assert_eq!(pieces.join(" "), text);
    }

    #[test]
    fn line_breaks_are_preferred_and_characters_counted_not_bytes() {
        let pieces = split_at_words("ééé ééé\nzz zz zz", 9).expect("cut");
        assert_eq!(pieces, ["ééé ééé", "zz zz zz"]);
        assert_eq!(
            split_at_words("abc def", 3),
            Some(vec!["abc".into(), "def".into()])
        );
    }

    #[test]
    fn a_word_longer_than_the_limit_is_not_cut() {
        assert_eq!(split_at_words("a verylongword b", 5), None);
        assert_eq!(split_at_words(&"x".repeat(11), 10), None);
    }
}
