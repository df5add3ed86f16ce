//! The columns a terminal gives text. unicode-width (what ratatui measures with) gives no
//! column to the spacing vowel signs that extend a grapheme cluster (Tamil `ா` in `நா`,
//! Bengali `া` in `বা`, Kannada `ೂ`, Malayalam `ാ`, Sinhala, Balinese...), while terminals that
//! measure text a code point at a time, as glibc's `wcwidth` does (tmux, xterm, VTE), give
//! each of them one. Counted ratatui's way, a line of Bengali or Tamil ran past its place on
//! screen (into the nick list) and left letters behind when it changed. The client measures
//! with the terminals' count ([`columns`]: wrapping, cutting, the cursor) and the view moves
//! ratatui's cells to the columns the terminal will use (`view::align_to_terminal`).

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The spacing marks (general category Mc) that unicode-width counts as no column and
/// glibc's `wcwidth` as one or two: the difference, found by comparing the two over every
/// code point (unicode-width 0.2, glibc 2.36). Sorted, for a binary search.
const SPACING_EXTENDERS: &[(char, usize)] = &[
    ('\u{09BE}', 1),
    ('\u{09D7}', 1),
    ('\u{0B3E}', 1),
    ('\u{0B57}', 1),
    ('\u{0BBE}', 1),
    ('\u{0BD7}', 1),
    ('\u{0CC0}', 1),
    ('\u{0CC2}', 1),
    ('\u{0CC7}', 1),
    ('\u{0CC8}', 1),
    ('\u{0CCA}', 1),
    ('\u{0CCB}', 1),
    ('\u{0CD5}', 1),
    ('\u{0CD6}', 1),
    ('\u{0D3E}', 1),
    ('\u{0D57}', 1),
    ('\u{0DCF}', 1),
    ('\u{0DDF}', 1),
    ('\u{1715}', 1),
    ('\u{1734}', 1),
    ('\u{1B35}', 1),
    ('\u{1B3B}', 1),
    ('\u{1B3D}', 1),
    ('\u{1B43}', 1),
    ('\u{1B44}', 1),
    ('\u{1BAA}', 1),
    ('\u{1BF2}', 1),
    ('\u{1BF3}', 1),
    ('\u{302E}', 2),
    ('\u{302F}', 2),
    ('\u{A953}', 1),
    ('\u{A9C0}', 1),
    ('\u{111C0}', 1),
    ('\u{11235}', 1),
    ('\u{1133E}', 1),
    ('\u{1134D}', 1),
    ('\u{11357}', 1),
    ('\u{114B0}', 1),
    ('\u{114BD}', 1),
    ('\u{115AF}', 1),
    ('\u{116B6}', 1),
    ('\u{11930}', 1),
    ('\u{1193D}', 1),
    ('\u{16FF0}', 2),
    ('\u{16FF1}', 2),
    ('\u{1D165}', 1),
    ('\u{1D166}', 1),
    ('\u{1D16D}', 1),
    ('\u{1D16E}', 1),
    ('\u{1D16F}', 1),
    ('\u{1D170}', 1),
    ('\u{1D171}', 1),
    ('\u{1D172}', 1),
];

/// Columns a terminal gives `c` beyond what unicode-width says.
fn extra(c: char) -> usize {
    // Every entry is above U+0900: most text is let through on this compare.
    if c < '\u{0900}' {
        return 0;
    }
    SPACING_EXTENDERS
        .binary_search_by(|(k, _)| k.cmp(&c))
        .map_or(0, |i| SPACING_EXTENDERS[i].1)
}

/// Columns a terminal gives a character.
pub fn char_columns(c: char) -> usize {
    c.width().unwrap_or(0) + extra(c)
}

/// Columns a terminal gives a text: unicode-width's count plus the spacing marks it leaves out.
pub fn columns(s: &str) -> usize {
    s.width() + s.chars().map(extra).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_vowel_signs_take_a_column_as_in_a_terminal() {
        assert_eq!(columns("நாடு"), 4); // ந ா ட ு
        assert_eq!("நாடு".width(), 3, "unicode-width's count, for the record");
        assert_eq!(columns("বাংলা"), 5);
        assert_eq!(columns("ಕನ್ನಡ ಕೂಡ"), 8);
        assert_eq!(columns("abc 日本"), 8);
        assert_eq!(char_columns('\u{0BBE}'), 1);
        assert_eq!(char_columns('\u{0BCD}'), 0, "a virama takes none");
        assert!(SPACING_EXTENDERS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
