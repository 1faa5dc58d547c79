//! Text helpers for user functions.

use std::str::SplitWhitespace;

/// The words of `line`, exactly as [`str::split_whitespace`] finds them,
/// found a byte at a time when the line is ASCII.
///
/// `split_whitespace` decodes every character and asks Unicode whether it is
/// white space; in a guest that is several times the work of testing a byte.
/// On an ASCII line the two agree (the ASCII white space that Unicode knows is
/// space, `\t`, `\n`, `\x0b`, `\x0c` and `\r`), so this tests bytes there and
/// falls back to `split_whitespace` on any other line.
///
/// ```
/// let words: Vec<&str> = weft::text::words(" a\tquick\x0bfox  jumps\r\n").collect();
/// assert_eq!(words, ["a", "quick", "fox", "jumps"]);
/// ```
pub fn words(line: &str) -> Words<'_> {
    if line.is_ascii() {
        Words { ascii: line.as_bytes(), other: None }
    } else {
        Words { ascii: &[], other: Some(line.split_whitespace()) }
    }
}

/// The iterator [`words`] returns.
#[derive(Debug, Clone)]
pub struct Words<'a> {
    /// What is left of an ASCII line.
    ascii: &'a [u8],
    /// Any other line.
    other: Option<SplitWhitespace<'a>>,
}

/// Whether an ASCII byte is white space to Unicode (`u8::is_ascii_whitespace`
/// lacks `\x0b`, which `char::is_whitespace` has).
#[inline(always)]
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        if let Some(other) = &mut self.other {
            return other.next();
        }
        let start = self.ascii.iter().position(|&b| !is_space(b))?;
        let rest = &self.ascii[start..];
        let (word, tail) = rest.split_at(rest.iter().position(|&b| is_space(b)).unwrap_or(rest.len()));
        self.ascii = tail;
        // Checked slicing of a `str` here costs about a tenth of a word count's
        // fuel (measured), for boundaries that cannot be wrong:
        #[allow(unsafe_code)]
        // SAFETY: `ascii` is a piece of an ASCII line, and any run of ASCII bytes is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(word) })
    }
}

impl std::iter::FusedIterator for Words<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Text made mostly of white space of every kind, ASCII and not, and short words.
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(" "),
            Just("\t"),
            Just("\n"),
            Just("\x0b"),
            Just("\x0c"),
            Just("\r"),
            Just("\x1c"),
            Just("\u{85}"),
            Just("\u{a0}"),
            Just("\u{3000}"),
            Just("\u{2028}"),
            Just("a"),
            Just("Word"),
            Just("é"),
            Just("x\u{0}y"),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn words_are_split_whitespace(line in text()) {
            prop_assert_eq!(words(&line).collect::<Vec<_>>(), line.split_whitespace().collect::<Vec<_>>());
        }

        #[test]
        fn words_of_any_ascii_line_are_split_whitespace(bytes in prop::collection::vec(0u8..128, 0..80)) {
            let line = String::from_utf8(bytes).unwrap_or_default();
            prop_assert_eq!(words(&line).collect::<Vec<_>>(), line.split_whitespace().collect::<Vec<_>>());
        }

        #[test]
        fn words_of_any_string_are_split_whitespace(line in any::<String>()) {
            prop_assert_eq!(words(&line).collect::<Vec<_>>(), line.split_whitespace().collect::<Vec<_>>());
        }
    }

    #[test]
    fn ascii_lines_are_split_on_all_six_ascii_spaces_only() {
        let line = "a b\tc\nd\x0be\x0cf\rg\x1ch\x1fi";
        assert!(words(line).other.is_none(), "an ASCII line is split on bytes");
        assert_eq!(words(line).collect::<Vec<_>>(), ["a", "b", "c", "d", "e", "f", "g\x1ch\x1fi"]);
        assert_eq!(words("").count(), 0);
        assert_eq!(words(" \t ").count(), 0);
    }
}
