//! Which of our languages the copy is in.

use whatlang::{Detector, Lang};

/// The languages we accept in settings, as whatlang knows them.
const OURS: &[(Lang, &str)] = &[
    (Lang::Eng, "en"),
    (Lang::Deu, "de"),
    (Lang::Fra, "fr"),
    (Lang::Spa, "es"),
    (Lang::Ita, "it"),
    (Lang::Nld, "nl"),
    (Lang::Por, "pt"),
    (Lang::Swe, "sv"),
    (Lang::Pol, "pl"),
    (Lang::Jpn, "ja"),
];

/// Below this many letters the guess is not worth a finding.
const MIN_LETTERS: usize = 30;

/// The language the text is written in (primary subtag), among ours, when the detector is
/// confident; `None` for text too short or too mixed to tell.
pub fn detect(text: &str) -> Option<&'static str> {
    if text.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return None;
    }
    let detector = Detector::with_allowlist(OURS.iter().map(|(l, _)| *l).collect());
    let info = detector.detect(text)?;
    if !info.is_reliable() && info.confidence() < 0.5 {
        return None;
    }
    OURS.iter()
        .find(|(l, _)| *l == info.lang())
        .map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_of_our_languages_is_told_apart() {
        for (text, lang) in [
            ("Your new trail jacket keeps the rain out and the warmth in, all the way to the summit.", "en"),
            ("Deine neue Wanderjacke hält den Regen draußen und die Wärme drinnen, bis zum Gipfel.", "de"),
            ("Ta nouvelle veste de randonnée garde la pluie dehors et la chaleur dedans, jusqu'au sommet.", "fr"),
            ("Tu nueva chaqueta de montaña mantiene la lluvia fuera y el calor dentro, hasta la cima.", "es"),
            ("La tua nuova giacca da trekking tiene fuori la pioggia e dentro il calore, fino alla vetta.", "it"),
            ("Je nieuwe wandeljas houdt de regen buiten en de warmte binnen, helemaal tot aan de top.", "nl"),
            ("O teu novo casaco de caminhada mantém a chuva lá fora e o calor dentro, até ao cume.", "pt"),
            ("Din nya vandringsjacka håller regnet ute och värmen inne, hela vägen upp till toppen.", "sv"),
            ("Twoja nowa kurtka trekkingowa zatrzymuje deszcz na zewnątrz i ciepło w środku, aż na szczyt.", "pl"),
            ("新しいトレッキングジャケットは、山頂まで雨を防ぎ、暖かさを保ちます。", "ja"),
        ] {
            assert_eq!(detect(text), Some(lang), "{text}");
        }
    }

    #[test]
    fn short_text_is_not_judged() {
        assert_eq!(detect("Hi Jonas!"), None);
    }
}
