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

/// The language the text is written in when the detector is confident: the primary subtag of
/// one of ours, or whatlang's code for any other ("nob", "ces", "cmn"); `None` for text too
/// short or too mixed to tell.
pub fn detect(text: &str) -> Option<&'static str> {
    if text.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return None;
    }
    // Japanese is told by its kana: ideographs alone are Chinese.
    let kana = text
        .chars()
        .filter(|c| matches!(*c as u32, 0x3040..=0x30FF))
        .count();
    let han = text
        .chars()
        .filter(|c| matches!(*c as u32, 0x4E00..=0x9FFF))
        .count();
    if han > 0 || kana > 0 {
        return Some(if kana * 10 >= han { "ja" } else { "cmn" });
    }
    // Among our languages first: a near neighbour (Norwegian beside Swedish, Czech beside
    // Polish) must be more likely than the one of ours to count.
    let ours = Detector::with_allowlist(OURS.iter().map(|(l, _)| *l).collect()).detect(text)?;
    let ours_code = OURS
        .iter()
        .find(|(l, _)| *l == ours.lang())
        .map(|(_, c)| *c)?;
    // Afrikaans reads as Dutch, Galician as Portuguese: neighbours too close to call.
    const TOO_CLOSE: &[Lang] = &[Lang::Afr];
    match Detector::new()
        .detect(text)
        .filter(|a| !TOO_CLOSE.contains(&a.lang()))
    {
        Some(any)
            if any.lang() != ours.lang()
                && !OURS.iter().any(|(l, _)| *l == any.lang())
                && any.confidence() > 0.2 =>
        {
            Some(any.lang().code())
        }
        _ if ours.is_reliable() || ours.confidence() >= 0.5 => Some(ours_code),
        _ => None,
    }
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
