//! Phrase banks and number, money and date formats for the writer's ten languages.
//!
//! Placeholders: `{name}` first name, `{p}` product title, `{f}` a phrase from the product's
//! description, `{h}` something bought before, `{price}` a listed price, `{offer}` the brief's
//! offer rendered in the language, `{code}`, `{link}`. Titles and description phrases are used
//! verbatim (catalog text is not translated), so frames avoid articles that would need a gender.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
    Fr,
    Es,
    It,
    Nl,
    Pt,
    Sv,
    Pl,
    Ja,
}

impl Lang {
    pub const ALL: [Lang; 10] = [
        Lang::En,
        Lang::De,
        Lang::Fr,
        Lang::Es,
        Lang::It,
        Lang::Nl,
        Lang::Pt,
        Lang::Sv,
        Lang::Pl,
        Lang::Ja,
    ];

    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
            Lang::Es => "es",
            Lang::It => "it",
            Lang::Nl => "nl",
            Lang::Pt => "pt",
            Lang::Sv => "sv",
            Lang::Pl => "pl",
            Lang::Ja => "ja",
        }
    }

    /// The primary subtag of a BCP-47 tag (`de-AT` → de), if it is one of ours.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.tag() == primary)
    }

    /// Sentences are joined with a space, except in Japanese.
    pub fn sep(self) -> &'static str {
        if self == Lang::Ja {
            ""
        } else {
            " "
        }
    }

    pub fn bank(self) -> &'static Bank {
        match self {
            Lang::En => &EN,
            Lang::De => &DE,
            Lang::Fr => &FR,
            Lang::Es => &ES,
            Lang::It => &IT,
            Lang::Nl => &NL,
            Lang::Pt => &PT,
            Lang::Sv => &SV,
            Lang::Pl => &PL,
            Lang::Ja => &JA,
        }
    }
}

/// How an offer is put into words: the parts are joined in `order`.
pub struct OfferWords {
    pub percent: &'static str,
    pub amount: &'static str,
    pub free_shipping: &'static str,
    pub free_shipping_min: &'static str,
    pub scope: &'static str,
    pub everything: &'static str,
    pub until: &'static str,
    pub code: &'static str,
}

pub struct Bank {
    pub greet_name: &'static [&'static str],
    pub greet_anon: &'static [&'static str],
    pub history: &'static [&'static str],
    pub lead: &'static [&'static str],
    pub more: &'static [&'static str],
    pub fact: &'static [&'static str],
    pub price: &'static [&'static str],
    pub offer: &'static [&'static str],
    pub extra: &'static [&'static str],
    pub closer: &'static [&'static str],
    pub subject_name: &'static [&'static str],
    pub subject_anon: &'static [&'static str],
    pub subject_offer: &'static [&'static str],
    pub subject_short: &'static [&'static str],
    pub preheader: &'static [&'static str],
    pub preheader_history: &'static [&'static str],
    pub preheader_offer: &'static [&'static str],
    pub preheader_short: &'static [&'static str],
    pub offer_words: OfferWords,
    /// Offers nobody stated, as models make them up.
    pub invented_offers: &'static [&'static str],
    pub invented_offer_frame: &'static [&'static str],
    pub code_frame: &'static [&'static str],
    pub link_frame: &'static [&'static str],
    pub wrong_price_frame: &'static [&'static str],
    pub given_names: &'static [&'static str],
    pub surnames: &'static [&'static str],
    pub month_names: Option<&'static [&'static str; 12]>,
}

static EN: Bank = Bank {
    greet_name: &[
        "Hi {name}!",
        "Hello {name}!",
        "Hey {name}!",
        "{name}, good to see you again.",
    ],
    greet_anon: &[
        "Hi there!",
        "Hello!",
        "Good news!",
        "Hello, and thanks for stopping by.",
    ],
    history: &[
        "Since you picked up the {h}, we thought you might like a few ideas to go with it.",
        "We hope the {h} has been treating you well.",
        "Your {h} gave us a good idea of what you enjoy.",
        "Thanks again for choosing the {h} last time.",
    ],
    lead: &[
        "First up: the {p}.",
        "We think the {p} would suit you perfectly.",
        "Have a look at the {p}, picked with you in mind.",
        "The {p} is the one we would start with.",
        "Meet the {p}.",
    ],
    more: &[
        "Also worth a look: the {p}.",
        "It pairs nicely with the {p}.",
        "And if you want something extra, there is the {p}.",
        "The {p} rounds it off.",
    ],
    fact: &[
        "What we like about the {p}: {f}.",
        "The {p} stands out for one reason: {f}.",
        "In short, the {p} means {f}.",
    ],
    price: &[
        "The {p} is {price}.",
        "At {price}, the {p} is an easy choice.",
    ],
    offer: &[
        "Good to know: {offer}.",
        "Our offer for you: {offer}.",
        "Right now there is {offer}.",
    ],
    extra: &[
        "Everything was chosen to fit the way you shop.",
        "Take your time and see what feels right.",
        "We kept the list short on purpose.",
        "Each pick works on its own or together.",
        "There is plenty more to explore whenever you are ready.",
    ],
    closer: &[
        "Enjoy browsing.",
        "We would love to hear what you think.",
        "See you soon.",
        "Happy shopping.",
    ],
    subject_name: &[
        "{name}, meet the {p}",
        "{name}, picked for you: {p}",
        "{name}, your next favourite?",
    ],
    subject_anon: &[
        "Picked for you: the {p}",
        "Meet the {p}",
        "Something new for you",
    ],
    subject_offer: &["{offer} is here", "Don't miss it: {offer}"],
    subject_short: &["Picked for you", "New picks"],
    preheader: &[
        "A closer look at the {p} and more",
        "Chosen with your taste in mind",
        "Fresh ideas, picked just for you",
    ],
    preheader_history: &["Because you liked the {h}", "Ideas to go with your {h}"],
    preheader_offer: &["Plus {offer}"],
    preheader_short: &["Just for you", "Take a look"],
    offer_words: OfferWords {
        percent: "{n}% off",
        amount: "{a} off",
        free_shipping: "free shipping",
        free_shipping_min: "free shipping on orders over {a}",
        scope: "on {s}",
        everything: "on everything",
        until: "until {d}",
        code: "with code {c}",
    },
    invented_offers: &[
        "free shipping on your next order",
        "free 2-day shipping",
        "shipping's on us",
        "buy 2, get 1 free",
        "half price on selected styles",
        "only 3 left in stock",
        "back in stock for a short time",
        "take 25 off your order",
        "a free gift with every order",
        "30-day free returns",
    ],
    invented_offer_frame: &[
        "As a thank-you, enjoy {offer}.",
        "Don't forget: {offer}.",
        "Bonus: {offer}.",
    ],
    code_frame: &[
        "Use code {code} at checkout.",
        "Enter {code} at checkout to save.",
        "Your code: {code}.",
    ],
    link_frame: &[
        "Shop now at {link}.",
        "See everything at {link}.",
        "More at {link}.",
    ],
    wrong_price_frame: &[
        "The {p} is now just {price}.",
        "Get the {p} for only {price}.",
    ],
    given_names: &["Sarah", "Michael", "Emily", "James", "Olivia"],
    surnames: &["Johnson", "Miller", "Thompson", "Walker", "Harris"],
    month_names: Some(&[
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]),
};

static DE: Bank = Bank {
    greet_name: &[
        "Hallo {name}!",
        "Hi {name}!",
        "Hey {name}!",
        "Schön, dass du da bist, {name}!",
    ],
    greet_anon: &[
        "Hallo!",
        "Guten Tag!",
        "Schön, dass du da bist!",
        "Hallo und willkommen zurück!",
    ],
    history: &[
        "Zu deinem {h} haben wir ein paar passende Ideen gefunden.",
        "Wir hoffen, du hast viel Freude an deinem Kauf: {h}.",
        "Dein letzter Einkauf ({h}) hat uns verraten, was dir gefällt.",
        "Danke noch einmal, dass du dich für {h} entschieden hast.",
    ],
    lead: &[
        "Unser Tipp für dich: {p}.",
        "Wie wäre es mit {p}?",
        "Ganz oben auf unserer Liste für dich steht {p}.",
        "Neu für dich ausgewählt: {p}.",
        "Wir glauben, {p} passt perfekt zu dir.",
    ],
    more: &[
        "Ebenfalls einen Blick wert: {p}.",
        "Dazu passt wunderbar {p}.",
        "Und wenn du noch etwas suchst: {p}.",
        "Abgerundet wird das Ganze von {p}.",
    ],
    fact: &[
        "Das Besondere an {p}: {f}.",
        "Was uns an {p} überzeugt: {f}.",
        "Kurz gesagt bietet {p} Folgendes: {f}.",
    ],
    price: &["{p} gibt es für {price}.", "Für {price} gehört {p} dir."],
    offer: &[
        "Gut zu wissen: {offer}.",
        "Unser Angebot für dich: {offer}.",
        "Jetzt gilt: {offer}.",
    ],
    extra: &[
        "Alles ist so ausgewählt, dass es zu dir passt.",
        "Nimm dir Zeit und schau, was dir gefällt.",
        "Wir haben die Auswahl bewusst kurz gehalten.",
        "Jedes Stück macht allein oder in Kombination eine gute Figur.",
        "Im Shop gibt es noch viel mehr zu entdecken.",
    ],
    closer: &[
        "Viel Spaß beim Stöbern.",
        "Wir freuen uns auf deine Meinung.",
        "Bis bald.",
        "Viel Freude beim Einkaufen.",
    ],
    subject_name: &[
        "{name}, entdecke {p}",
        "{name}, für dich ausgewählt: {p}",
        "{name}, dein neues Lieblingsstück?",
    ],
    subject_anon: &[
        "Für dich ausgewählt: {p}",
        "Entdecke {p}",
        "Etwas Neues für dich",
    ],
    subject_offer: &["Jetzt: {offer}", "Nicht verpassen: {offer}"],
    subject_short: &["Für dich ausgewählt", "Neue Ideen"],
    preheader: &[
        "Ein genauer Blick auf {p} und mehr",
        "Passend zu deinem Geschmack ausgewählt",
        "Frische Ideen, nur für dich",
    ],
    preheader_history: &["Weil dir {h} gefallen hat", "Ideen passend zu {h}"],
    preheader_offer: &["Dazu: {offer}"],
    preheader_short: &["Nur für dich", "Schau mal rein"],
    offer_words: OfferWords {
        percent: "{n} % Rabatt",
        amount: "{a} Rabatt",
        free_shipping: "kostenloser Versand",
        free_shipping_min: "kostenloser Versand ab {a}",
        scope: "auf {s}",
        everything: "auf alles",
        until: "bis {d}",
        code: "mit dem Code {c}",
    },
    invented_offers: &[
        "kostenloser Versand auf deine nächste Bestellung",
        "gratis Expressversand",
        "der Versand geht auf uns",
        "kaufe 2, zahle 1",
        "die Hälfte auf ausgewählte Modelle",
        "nur noch 3 Stück auf Lager",
        "wieder vorrätig, aber nur kurz",
        "25 € Rabatt auf deine Bestellung",
        "ein Geschenk zu jeder Bestellung",
        "30 Tage kostenlose Rücksendung",
    ],
    invented_offer_frame: &[
        "Als Dankeschön: {offer}.",
        "Nicht vergessen: {offer}.",
        "Extra für dich: {offer}.",
    ],
    code_frame: &[
        "Mit dem Code {code} sparst du an der Kasse.",
        "Gib an der Kasse {code} ein.",
        "Dein Code: {code}.",
    ],
    link_frame: &[
        "Jetzt shoppen unter {link}.",
        "Alles ansehen auf {link}.",
        "Mehr unter {link}.",
    ],
    wrong_price_frame: &["{p} jetzt für nur {price}.", "Hol dir {p} für {price}."],
    given_names: &["Lena", "Jonas", "Katrin", "Felix", "Sabine"],
    surnames: &["Schneider", "Becker", "Hoffmann", "Wagner", "Schulz"],
    month_names: None,
};

static FR: Bank = Bank {
    greet_name: &[
        "Bonjour {name} !",
        "Coucou {name} !",
        "{name}, ravi de vous revoir.",
        "Bonjour {name}, voici nos idées.",
    ],
    greet_anon: &[
        "Bonjour !",
        "Bonne nouvelle !",
        "Bonjour et merci de votre visite.",
    ],
    history: &[
        "Depuis votre achat ({h}), nous avons trouvé quelques idées qui vont avec.",
        "Nous espérons que vous profitez bien de votre {h}.",
        "Votre dernier achat, {h}, nous a donné une belle idée de vos goûts.",
        "Merci encore d'avoir choisi {h}.",
    ],
    lead: &[
        "Notre coup de cœur pour vous : {p}.",
        "Et si vous craquiez pour {p} ?",
        "Nous pensons que {p} vous irait parfaitement.",
        "Sélectionné pour vous : {p}.",
        "Découvrez {p}.",
    ],
    more: &[
        "À découvrir aussi : {p}.",
        "Il s'associe très bien avec {p}.",
        "Et pour compléter, il y a {p}.",
        "Sans oublier {p}.",
    ],
    fact: &[
        "Ce qui fait la différence avec {p} : {f}.",
        "Ce que nous aimons dans {p} : {f}.",
        "En bref, {p}, c'est ceci : {f}.",
    ],
    price: &[
        "{p} est à {price}.",
        "Pour {price}, {p} est un choix évident.",
    ],
    offer: &[
        "Bon à savoir : {offer}.",
        "Notre offre pour vous : {offer}.",
        "En ce moment : {offer}.",
    ],
    extra: &[
        "Chaque article a été choisi selon vos envies.",
        "Prenez votre temps pour choisir.",
        "Nous avons volontairement gardé une sélection courte.",
        "Chaque pièce se porte seule ou ensemble.",
        "Il y a encore bien plus à découvrir dans la boutique.",
    ],
    closer: &[
        "Bonne découverte.",
        "Nous avons hâte d'avoir votre avis.",
        "À très bientôt.",
        "Bon shopping.",
    ],
    subject_name: &[
        "{name}, découvrez {p}",
        "{name}, choisi pour vous : {p}",
        "{name}, votre prochain coup de cœur ?",
    ],
    subject_anon: &[
        "Choisi pour vous : {p}",
        "Découvrez {p}",
        "Une nouveauté pour vous",
    ],
    subject_offer: &["En ce moment : {offer}", "À ne pas manquer : {offer}"],
    subject_short: &["Choisi pour vous", "Nouvelles idées"],
    preheader: &[
        "Zoom sur {p} et plus encore",
        "Une sélection selon vos goûts",
        "Des idées fraîches, rien que pour vous",
    ],
    preheader_history: &[
        "Parce que vous avez aimé {h}",
        "Des idées pour aller avec {h}",
    ],
    preheader_offer: &["Et aussi : {offer}"],
    preheader_short: &["Rien que pour vous", "Jetez un œil"],
    offer_words: OfferWords {
        percent: "{n} % de réduction",
        amount: "{a} de réduction",
        free_shipping: "livraison gratuite",
        free_shipping_min: "livraison gratuite dès {a} d'achat",
        scope: "sur {s}",
        everything: "sur tout le site",
        until: "jusqu'au {d}",
        code: "avec le code {c}",
    },
    invented_offers: &[
        "livraison offerte sur votre prochaine commande",
        "livraison express gratuite",
        "la livraison est pour nous",
        "2 achetés, le 3e offert",
        "moitié prix sur une sélection",
        "plus que 3 en stock",
        "de retour en stock pour peu de temps",
        "25 € de remise sur votre commande",
        "un cadeau offert avec chaque commande",
        "retours gratuits pendant 30 jours",
    ],
    invented_offer_frame: &[
        "Pour vous remercier : {offer}.",
        "N'oubliez pas : {offer}.",
        "En prime : {offer}.",
    ],
    code_frame: &[
        "Utilisez le code {code} lors du paiement.",
        "Saisissez {code} au moment de payer.",
        "Votre code : {code}.",
    ],
    link_frame: &[
        "Rendez-vous sur {link}.",
        "Toute la sélection sur {link}.",
        "Plus d'infos sur {link}.",
    ],
    wrong_price_frame: &[
        "{p} maintenant à seulement {price}.",
        "{p} pour {price} seulement.",
    ],
    given_names: &["Camille", "Julien", "Claire", "Antoine", "Manon"],
    surnames: &["Dubois", "Lefebvre", "Moreau", "Laurent", "Girard"],
    month_names: None,
};

static ES: Bank = Bank {
    greet_name: &[
        "¡Hola, {name}!",
        "¡Hola {name}!",
        "{name}, qué alegría verte de nuevo.",
        "¡Buenas, {name}!",
    ],
    greet_anon: &["¡Hola!", "¡Buenas noticias!", "Hola, gracias por pasarte."],
    history: &[
        "Desde que compraste {h}, hemos pensado en algunas ideas que combinan.",
        "Esperamos que estés disfrutando de tu {h}.",
        "Tu última compra, {h}, nos dio una buena pista de lo que te gusta.",
        "Gracias de nuevo por elegir {h}.",
    ],
    lead: &[
        "Nuestra recomendación para ti: {p}.",
        "¿Qué te parece {p}?",
        "Creemos que {p} es perfecto para ti.",
        "Elegido para ti: {p}.",
        "Te presentamos {p}.",
    ],
    more: &[
        "También merece la pena: {p}.",
        "Combina muy bien con {p}.",
        "Y si buscas algo más, tienes {p}.",
        "Para completar, {p}.",
    ],
    fact: &[
        "Lo que hace especial a {p}: {f}.",
        "Lo que más nos gusta de {p}: {f}.",
        "En resumen, {p} ofrece esto: {f}.",
    ],
    price: &[
        "{p} cuesta {price}.",
        "Por {price}, {p} es una gran elección.",
    ],
    offer: &[
        "Buenas noticias: {offer}.",
        "Nuestra oferta para ti: {offer}.",
        "Ahora mismo tienes {offer}.",
    ],
    extra: &[
        "Todo está elegido pensando en ti.",
        "Tómate tu tiempo y elige lo que más te guste.",
        "Hemos preferido una selección corta.",
        "Cada artículo funciona solo o combinado.",
        "En la tienda hay mucho más por descubrir.",
    ],
    closer: &[
        "¡Disfruta descubriendo!",
        "Nos encantará saber qué te parece.",
        "¡Hasta pronto!",
        "¡Felices compras!",
    ],
    subject_name: &[
        "{name}, descubre {p}",
        "{name}, elegido para ti: {p}",
        "{name}, ¿tu próximo favorito?",
    ],
    subject_anon: &["Elegido para ti: {p}", "Descubre {p}", "Algo nuevo para ti"],
    subject_offer: &["Ahora: {offer}", "No te lo pierdas: {offer}"],
    subject_short: &["Elegido para ti", "Nuevas ideas"],
    preheader: &[
        "Un vistazo a {p} y mucho más",
        "Seleccionado según tus gustos",
        "Ideas nuevas, solo para ti",
    ],
    preheader_history: &["Porque te gustó {h}", "Ideas que combinan con {h}"],
    preheader_offer: &["Además: {offer}"],
    preheader_short: &["Solo para ti", "Échale un vistazo"],
    offer_words: OfferWords {
        percent: "{n} % de descuento",
        amount: "{a} de descuento",
        free_shipping: "envío gratuito",
        free_shipping_min: "envío gratuito en pedidos superiores a {a}",
        scope: "en {s}",
        everything: "en todo",
        until: "hasta el {d}",
        code: "con el código {c}",
    },
    invented_offers: &[
        "envío gratis en tu próximo pedido",
        "envío exprés gratis",
        "el envío corre de nuestra cuenta",
        "compra 2 y llévate 3",
        "mitad de precio en artículos seleccionados",
        "solo quedan 3 unidades",
        "de nuevo disponible por poco tiempo",
        "25 € de descuento en tu pedido",
        "un regalo con cada pedido",
        "devoluciones gratis durante 30 días",
    ],
    invented_offer_frame: &[
        "Como agradecimiento: {offer}.",
        "No lo olvides: {offer}.",
        "Además: {offer}.",
    ],
    code_frame: &[
        "Usa el código {code} al pagar.",
        "Introduce {code} en la caja.",
        "Tu código: {code}.",
    ],
    link_frame: &["Compra ya en {link}.", "Todo en {link}.", "Más en {link}."],
    wrong_price_frame: &["{p} ahora por solo {price}.", "Llévate {p} por {price}."],
    given_names: &["Lucía", "Javier", "Marta", "Diego", "Carmen"],
    surnames: &["García", "Fernández", "López", "Martínez", "Sánchez"],
    month_names: None,
};

static IT: Bank = Bank {
    greet_name: &[
        "Ciao {name}!",
        "Ciao {name}, come stai?",
        "{name}, che piacere rivederti.",
        "Buongiorno {name}!",
    ],
    greet_anon: &["Ciao!", "Buone notizie!", "Ciao e grazie della visita."],
    history: &[
        "Dopo il tuo acquisto ({h}) abbiamo pensato ad alcune idee abbinate.",
        "Speriamo che ti stia godendo il tuo {h}.",
        "Il tuo ultimo acquisto, {h}, ci ha fatto capire cosa ti piace.",
        "Grazie ancora per aver scelto {h}.",
    ],
    lead: &[
        "Il nostro consiglio per te: {p}.",
        "Che ne dici di {p}?",
        "Pensiamo che {p} sia perfetto per te.",
        "Scelto per te: {p}.",
        "Ti presentiamo {p}.",
    ],
    more: &[
        "Da non perdere anche: {p}.",
        "Si abbina benissimo a {p}.",
        "E se cerchi qualcosa in più, c'è {p}.",
        "Per completare, {p}.",
    ],
    fact: &[
        "Cosa rende speciale {p}: {f}.",
        "Cosa ci piace di {p}: {f}.",
        "In breve, {p} offre questo: {f}.",
    ],
    price: &["{p} costa {price}.", "A {price}, {p} è una scelta facile."],
    offer: &[
        "Buono a sapersi: {offer}.",
        "La nostra offerta per te: {offer}.",
        "In questo momento c'è {offer}.",
    ],
    extra: &[
        "Ogni articolo è stato scelto pensando a te.",
        "Prenditi il tuo tempo e scegli con calma.",
        "Abbiamo tenuto la selezione volutamente breve.",
        "Ogni pezzo funziona da solo o in coppia.",
        "Nel negozio c'è ancora tanto da scoprire.",
    ],
    closer: &[
        "Buona scoperta.",
        "Ci farebbe piacere sapere cosa ne pensi.",
        "A presto.",
        "Buono shopping.",
    ],
    subject_name: &[
        "{name}, scopri {p}",
        "{name}, scelto per te: {p}",
        "{name}, il tuo prossimo preferito?",
    ],
    subject_anon: &["Scelto per te: {p}", "Scopri {p}", "Una novità per te"],
    subject_offer: &["Ora: {offer}", "Da non perdere: {offer}"],
    subject_short: &["Scelto per te", "Nuove idee"],
    preheader: &[
        "Uno sguardo a {p} e non solo",
        "Selezionato secondo i tuoi gusti",
        "Idee nuove, solo per te",
    ],
    preheader_history: &["Perché ti è piaciuto {h}", "Idee da abbinare a {h}"],
    preheader_offer: &["In più: {offer}"],
    preheader_short: &["Solo per te", "Dai un'occhiata"],
    offer_words: OfferWords {
        percent: "{n}% di sconto",
        amount: "{a} di sconto",
        free_shipping: "spedizione gratuita",
        free_shipping_min: "spedizione gratuita per ordini superiori a {a}",
        scope: "su {s}",
        everything: "su tutto",
        until: "fino al {d}",
        code: "con il codice {c}",
    },
    invented_offers: &[
        "spedizione gratuita sul prossimo ordine",
        "spedizione express gratuita",
        "la spedizione la offriamo noi",
        "prendi 3, paghi 2",
        "metà prezzo su articoli selezionati",
        "solo 3 pezzi rimasti",
        "di nuovo disponibile per poco",
        "25 € di sconto sul tuo ordine",
        "un regalo con ogni ordine",
        "resi gratuiti per 30 giorni",
    ],
    invented_offer_frame: &[
        "Per ringraziarti: {offer}.",
        "Non dimenticare: {offer}.",
        "In più: {offer}.",
    ],
    code_frame: &[
        "Usa il codice {code} al checkout.",
        "Inserisci {code} alla cassa.",
        "Il tuo codice: {code}.",
    ],
    link_frame: &[
        "Acquista ora su {link}.",
        "Tutto su {link}.",
        "Scopri di più su {link}.",
    ],
    wrong_price_frame: &["{p} ora a soli {price}.", "Prendi {p} a {price}."],
    given_names: &["Giulia", "Marco", "Francesca", "Luca", "Chiara"],
    surnames: &["Rossi", "Bianchi", "Romano", "Colombo", "Ricci"],
    month_names: None,
};

static NL: Bank = Bank {
    greet_name: &[
        "Hoi {name}!",
        "Hallo {name}!",
        "Hoi {name}, hoe gaat het?",
        "{name}, leuk je weer te zien.",
    ],
    greet_anon: &["Hallo!", "Goed nieuws!", "Hoi, fijn dat je er bent."],
    history: &[
        "Sinds je {h} hebt gekocht, hebben we een paar ideeën gevonden die daarbij passen.",
        "We hopen dat je veel plezier hebt van je {h}.",
        "Je vorige aankoop, {h}, vertelde ons wat je mooi vindt.",
        "Nogmaals bedankt dat je voor {h} hebt gekozen.",
    ],
    lead: &[
        "Onze tip voor jou: {p}.",
        "Wat dacht je van {p}?",
        "We denken dat {p} perfect bij je past.",
        "Speciaal voor jou gekozen: {p}.",
        "Maak kennis met {p}.",
    ],
    more: &[
        "Ook de moeite waard: {p}.",
        "Dat combineert mooi met {p}.",
        "En zoek je nog iets extra's, dan is er {p}.",
        "Als kers op de taart: {p}.",
    ],
    fact: &[
        "Wat {p} bijzonder maakt: {f}.",
        "Wat we zo goed vinden aan {p}: {f}.",
        "Kortom, {p} biedt dit: {f}.",
    ],
    price: &[
        "{p} kost {price}.",
        "Voor {price} is {p} een makkelijke keuze.",
    ],
    offer: &[
        "Goed om te weten: {offer}.",
        "Ons aanbod voor jou: {offer}.",
        "Nu geldt: {offer}.",
    ],
    extra: &[
        "Alles is gekozen zodat het bij jou past.",
        "Neem de tijd en kijk wat je mooi vindt.",
        "We hebben de selectie bewust kort gehouden.",
        "Elk item is los of samen te gebruiken.",
        "In de winkel is nog veel meer te ontdekken.",
    ],
    closer: &[
        "Veel kijkplezier.",
        "We horen graag wat je ervan vindt.",
        "Tot snel.",
        "Veel plezier met shoppen.",
    ],
    subject_name: &[
        "{name}, ontdek {p}",
        "{name}, voor jou gekozen: {p}",
        "{name}, je nieuwe favoriet?",
    ],
    subject_anon: &[
        "Voor jou gekozen: {p}",
        "Ontdek {p}",
        "Iets nieuws voor jou",
    ],
    subject_offer: &["Nu: {offer}", "Mis het niet: {offer}"],
    subject_short: &["Voor jou gekozen", "Nieuwe ideeën"],
    preheader: &[
        "Een kijkje bij {p} en meer",
        "Gekozen op basis van jouw smaak",
        "Frisse ideeën, speciaal voor jou",
    ],
    preheader_history: &["Omdat je {h} mooi vond", "Ideeën die passen bij {h}"],
    preheader_offer: &["Plus: {offer}"],
    preheader_short: &["Speciaal voor jou", "Neem een kijkje"],
    offer_words: OfferWords {
        percent: "{n}% korting",
        amount: "{a} korting",
        free_shipping: "gratis verzending",
        free_shipping_min: "gratis verzending vanaf {a}",
        scope: "op {s}",
        everything: "op alles",
        until: "t/m {d}",
        code: "met de code {c}",
    },
    invented_offers: &[
        "gratis verzending op je volgende bestelling",
        "gratis verzending binnen 2 dagen",
        "de verzending is van ons",
        "2 kopen, 1 gratis",
        "halve prijs op geselecteerde items",
        "nog maar 3 op voorraad",
        "weer op voorraad, maar niet lang",
        "25 euro korting op je bestelling",
        "een cadeautje bij elke bestelling",
        "30 dagen gratis retourneren",
    ],
    invented_offer_frame: &[
        "Als bedankje: {offer}.",
        "Vergeet niet: {offer}.",
        "Extra voor jou: {offer}.",
    ],
    code_frame: &[
        "Gebruik code {code} bij het afrekenen.",
        "Vul {code} in bij de kassa.",
        "Jouw code: {code}.",
    ],
    link_frame: &[
        "Shop nu op {link}.",
        "Alles bekijken op {link}.",
        "Meer op {link}.",
    ],
    wrong_price_frame: &[
        "{p} nu voor maar {price}.",
        "Haal {p} in huis voor {price}.",
    ],
    given_names: &["Sanne", "Daan", "Lotte", "Bram", "Femke"],
    surnames: &["de Vries", "Jansen", "Bakker", "Visser", "Smit"],
    month_names: None,
};

static PT: Bank = Bank {
    greet_name: &[
        "Olá, {name}!",
        "Oi {name}!",
        "{name}, que bom ver você de novo.",
        "Olá {name}, tudo bem?",
    ],
    greet_anon: &["Olá!", "Boas notícias!", "Olá, obrigado pela visita."],
    history: &[
        "Desde que você comprou {h}, pensamos em algumas ideias que combinam.",
        "Esperamos que você esteja aproveitando o seu {h}.",
        "A sua última compra, {h}, mostrou-nos o que você gosta.",
        "Obrigado mais uma vez por escolher {h}.",
    ],
    lead: &[
        "A nossa dica para você: {p}.",
        "Que tal {p}?",
        "Achamos que {p} é perfeito para você.",
        "Escolhido para você: {p}.",
        "Conheça {p}.",
    ],
    more: &[
        "Também vale a pena: {p}.",
        "Combina muito bem com {p}.",
        "E se quiser algo mais, há {p}.",
        "Para completar, {p}.",
    ],
    fact: &[
        "O que torna {p} especial: {f}.",
        "O que mais gostamos em {p}: {f}.",
        "Resumindo, {p} oferece isto: {f}.",
    ],
    price: &[
        "{p} custa {price}.",
        "Por {price}, {p} é uma escolha fácil.",
    ],
    offer: &[
        "Bom saber: {offer}.",
        "A nossa oferta para você: {offer}.",
        "Agora mesmo: {offer}.",
    ],
    extra: &[
        "Tudo foi escolhido a pensar em você.",
        "Aproveite com calma e veja o que mais gosta.",
        "Mantivemos a seleção curta de propósito.",
        "Cada peça funciona sozinha ou em conjunto.",
        "Na loja há muito mais para descobrir.",
    ],
    closer: &[
        "Boas descobertas.",
        "Adoraríamos saber a sua opinião.",
        "Até breve.",
        "Boas compras.",
    ],
    subject_name: &[
        "{name}, conheça {p}",
        "{name}, escolhido para você: {p}",
        "{name}, o seu próximo favorito?",
    ],
    subject_anon: &[
        "Escolhido para você: {p}",
        "Conheça {p}",
        "Uma novidade para você",
    ],
    subject_offer: &["Agora: {offer}", "Não perca: {offer}"],
    subject_short: &["Escolhido para você", "Novas ideias"],
    preheader: &[
        "Um olhar sobre {p} e muito mais",
        "Selecionado de acordo com o seu gosto",
        "Ideias novas, só para você",
    ],
    preheader_history: &["Porque você gostou de {h}", "Ideias que combinam com {h}"],
    preheader_offer: &["E ainda: {offer}"],
    preheader_short: &["Só para você", "Dê uma olhada"],
    offer_words: OfferWords {
        percent: "{n}% de desconto",
        amount: "{a} de desconto",
        free_shipping: "envio grátis",
        free_shipping_min: "envio grátis em compras acima de {a}",
        scope: "em {s}",
        everything: "em tudo",
        until: "até {d}",
        code: "com o código {c}",
    },
    invented_offers: &[
        "frete grátis no seu próximo pedido",
        "entrega expressa grátis",
        "o envio fica por nossa conta",
        "leve 3, pague 2",
        "metade do preço em itens selecionados",
        "só restam 3 unidades",
        "de volta ao estoque por pouco tempo",
        "25 € de desconto no seu pedido",
        "um brinde em cada pedido",
        "devoluções grátis durante 30 dias",
    ],
    invented_offer_frame: &[
        "Como agradecimento: {offer}.",
        "Não se esqueça: {offer}.",
        "Bônus: {offer}.",
    ],
    code_frame: &[
        "Use o código {code} no checkout.",
        "Insira {code} ao finalizar a compra.",
        "O seu código: {code}.",
    ],
    link_frame: &[
        "Compre já em {link}.",
        "Veja tudo em {link}.",
        "Mais em {link}.",
    ],
    wrong_price_frame: &["{p} agora por apenas {price}.", "Leve {p} por {price}."],
    given_names: &["Ana Clara", "Pedro", "Beatriz", "João", "Mariana"],
    surnames: &["Silva", "Santos", "Oliveira", "Pereira", "Costa"],
    month_names: None,
};

static SV: Bank = Bank {
    greet_name: &[
        "Hej {name}!",
        "Hej hej {name}!",
        "{name}, kul att se dig igen.",
        "Hallå {name}!",
    ],
    greet_anon: &[
        "Hej!",
        "Goda nyheter!",
        "Hej och tack för att du tittar in.",
    ],
    history: &[
        "Sedan du köpte {h} har vi hittat några idéer som passar till.",
        "Vi hoppas att du trivs med din {h}.",
        "Ditt senaste köp, {h}, visade oss vad du gillar.",
        "Tack igen för att du valde {h}.",
    ],
    lead: &[
        "Vårt tips till dig: {p}.",
        "Vad sägs om {p}?",
        "Vi tror att {p} passar dig perfekt.",
        "Utvald för dig: {p}.",
        "Möt {p}.",
    ],
    more: &[
        "Också värd en titt: {p}.",
        "Det passar fint ihop med {p}.",
        "Och vill du ha något extra finns {p}.",
        "Som pricken över i: {p}.",
    ],
    fact: &[
        "Det som gör {p} speciell: {f}.",
        "Det vi gillar med {p}: {f}.",
        "Kort sagt erbjuder {p} detta: {f}.",
    ],
    price: &["{p} kostar {price}.", "För {price} är {p} ett enkelt val."],
    offer: &[
        "Bra att veta: {offer}.",
        "Vårt erbjudande till dig: {offer}.",
        "Just nu gäller: {offer}.",
    ],
    extra: &[
        "Allt är utvalt för att passa dig.",
        "Ta god tid på dig och se vad du gillar.",
        "Vi har medvetet hållit urvalet kort.",
        "Varje plagg fungerar för sig eller tillsammans.",
        "I butiken finns mycket mer att upptäcka.",
    ],
    closer: &[
        "Mycket nöje.",
        "Vi vill gärna höra vad du tycker.",
        "Vi ses snart.",
        "Trevlig shopping.",
    ],
    subject_name: &[
        "{name}, upptäck {p}",
        "{name}, utvalt för dig: {p}",
        "{name}, din nya favorit?",
    ],
    subject_anon: &["Utvalt för dig: {p}", "Upptäck {p}", "Något nytt för dig"],
    subject_offer: &["Nu: {offer}", "Missa inte: {offer}"],
    subject_short: &["Utvalt för dig", "Nya idéer"],
    preheader: &[
        "En närmare titt på {p} och mer",
        "Utvalt efter din smak",
        "Nya idéer, bara för dig",
    ],
    preheader_history: &["För att du gillade {h}", "Idéer som passar till {h}"],
    preheader_offer: &["Dessutom: {offer}"],
    preheader_short: &["Bara för dig", "Ta en titt"],
    offer_words: OfferWords {
        percent: "{n} % rabatt",
        amount: "{a} rabatt",
        free_shipping: "fri frakt",
        free_shipping_min: "fri frakt när du handlar för minst {a}",
        scope: "på {s}",
        everything: "på allt",
        until: "t.o.m. {d}",
        code: "med koden {c}",
    },
    invented_offers: &[
        "fri frakt på din nästa beställning",
        "gratis expressleverans",
        "frakten bjuder vi på",
        "köp 3, betala för 2",
        "halva priset på utvalda varor",
        "bara 3 kvar i lager",
        "tillbaka i lager en kort tid",
        "25 kr rabatt på din beställning",
        "en present med varje beställning",
        "30 dagars fri retur",
    ],
    invented_offer_frame: &[
        "Som tack: {offer}.",
        "Glöm inte: {offer}.",
        "Extra för dig: {offer}.",
    ],
    code_frame: &[
        "Använd koden {code} i kassan.",
        "Ange {code} när du betalar.",
        "Din kod: {code}.",
    ],
    link_frame: &[
        "Handla nu på {link}.",
        "Se allt på {link}.",
        "Mer på {link}.",
    ],
    wrong_price_frame: &["{p} nu för bara {price}.", "Fynda {p} för {price}."],
    given_names: &["Elsa", "Oskar", "Maja", "Viktor", "Ebba"],
    surnames: &["Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson"],
    month_names: None,
};

static PL: Bank = Bank {
    greet_name: &[
        "Cześć {name}!",
        "Dzień dobry, {name}!",
        "{name}, miło Cię znów widzieć.",
        "Hej {name}!",
    ],
    greet_anon: &[
        "Dzień dobry!",
        "Dobra wiadomość!",
        "Cześć, dziękujemy za odwiedziny.",
    ],
    history: &[
        "Od czasu zakupu ({h}) znaleźliśmy kilka pasujących pomysłów.",
        "Mamy nadzieję, że {h} sprawdza się świetnie.",
        "Twój ostatni zakup, {h}, podpowiedział nam, co lubisz.",
        "Jeszcze raz dziękujemy za wybór: {h}.",
    ],
    lead: &[
        "Nasza propozycja dla Ciebie: {p}.",
        "Co powiesz na {p}?",
        "Uważamy, że {p} będzie idealny dla Ciebie.",
        "Wybrane dla Ciebie: {p}.",
        "Poznaj {p}.",
    ],
    more: &[
        "Warto też zobaczyć: {p}.",
        "Świetnie pasuje do tego {p}.",
        "A jeśli szukasz czegoś więcej, jest {p}.",
        "Na dokładkę: {p}.",
    ],
    fact: &[
        "Co wyróżnia {p}: {f}.",
        "Co lubimy w {p}: {f}.",
        "W skrócie {p} oferuje to: {f}.",
    ],
    price: &["{p} kosztuje {price}.", "Za {price} {p} to łatwy wybór."],
    offer: &[
        "Dobrze wiedzieć: {offer}.",
        "Nasza oferta dla Ciebie: {offer}.",
        "Teraz obowiązuje: {offer}.",
    ],
    extra: &[
        "Wszystko zostało wybrane z myślą o Tobie.",
        "Nie spiesz się i wybierz to, co lubisz.",
        "Celowo postawiliśmy na krótką listę.",
        "Każda rzecz sprawdzi się osobno lub w zestawie.",
        "W sklepie czeka jeszcze wiele do odkrycia.",
    ],
    closer: &[
        "Miłego przeglądania.",
        "Chętnie poznamy Twoją opinię.",
        "Do zobaczenia.",
        "Udanych zakupów.",
    ],
    subject_name: &[
        "{name}, poznaj {p}",
        "{name}, wybrane dla Ciebie: {p}",
        "{name}, Twój nowy ulubieniec?",
    ],
    subject_anon: &[
        "Wybrane dla Ciebie: {p}",
        "Poznaj {p}",
        "Coś nowego dla Ciebie",
    ],
    subject_offer: &["Teraz: {offer}", "Nie przegap: {offer}"],
    subject_short: &["Wybrane dla Ciebie", "Nowe pomysły"],
    preheader: &[
        "Bliżej o {p} i nie tylko",
        "Wybrane zgodnie z Twoim gustem",
        "Świeże pomysły tylko dla Ciebie",
    ],
    preheader_history: &["Bo spodobał Ci się {h}", "Pomysły pasujące do {h}"],
    preheader_offer: &["A do tego: {offer}"],
    preheader_short: &["Tylko dla Ciebie", "Zajrzyj"],
    offer_words: OfferWords {
        percent: "{n}% rabatu",
        amount: "{a} rabatu",
        free_shipping: "darmowa dostawa",
        free_shipping_min: "darmowa dostawa przy zamówieniach od {a}",
        scope: "na {s}",
        everything: "na wszystko",
        until: "do {d}",
        code: "z kodem {c}",
    },
    invented_offers: &[
        "darmowa dostawa przy następnym zamówieniu",
        "darmowa dostawa ekspresowa",
        "wysyłkę bierzemy na siebie",
        "kup 2, trzeci gratis",
        "połowa ceny na wybrane produkty",
        "zostały tylko 3 sztuki",
        "znów dostępne, ale nie na długo",
        "25 zł rabatu na zamówienie",
        "prezent do każdego zamówienia",
        "darmowy zwrot przez 30 dni",
    ],
    invented_offer_frame: &[
        "W podziękowaniu: {offer}.",
        "Nie zapomnij: {offer}.",
        "Dodatkowo: {offer}.",
    ],
    code_frame: &[
        "Użyj kodu {code} przy kasie.",
        "Wpisz {code} podczas płatności.",
        "Twój kod: {code}.",
    ],
    link_frame: &[
        "Kupuj teraz na {link}.",
        "Wszystko na {link}.",
        "Więcej na {link}.",
    ],
    wrong_price_frame: &["{p} teraz tylko {price}.", "{p} za jedyne {price}."],
    given_names: &["Zofia", "Jakub", "Agnieszka", "Piotr", "Katarzyna"],
    surnames: &["Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kamiński"],
    month_names: None,
};

static JA: Bank = Bank {
    greet_name: &[
        "{name}さん、こんにちは。",
        "{name}様、いつもありがとうございます。",
        "{name}さん、お元気ですか。",
    ],
    greet_anon: &[
        "こんにちは。",
        "いつもご利用ありがとうございます。",
        "うれしいお知らせです。",
    ],
    history: &[
        "以前お買い上げいただいた{h}に合うアイテムを選びました。",
        "{h}を気に入っていただけていたらうれしいです。",
        "前回の{h}から、お好みが少し見えてきました。",
        "{h}をお選びいただき、ありがとうございました。",
    ],
    lead: &[
        "まずおすすめしたいのは{p}です。",
        "{p}はいかがでしょうか。",
        "{p}はきっとお気に召すと思います。",
        "あなたのために選んだのは{p}です。",
    ],
    more: &[
        "{p}もぜひご覧ください。",
        "{p}との組み合わせもおすすめです。",
        "もう一品加えるなら{p}です。",
    ],
    fact: &[
        "{p}の魅力は「{f}」という点です。",
        "{p}は「{f}」が特長です。",
        "{p}について一言でいうと「{f}」です。",
    ],
    price: &["{p}は{price}です。", "{price}で{p}をお求めいただけます。"],
    offer: &[
        "今なら{offer}。",
        "お得なお知らせ：{offer}。",
        "ただいま{offer}。",
    ],
    extra: &[
        "お好みに合わせて選びました。",
        "ごゆっくりご覧ください。",
        "あえて少しだけに絞りました。",
        "単品でも組み合わせても楽しめます。",
        "ショップにはほかにもたくさんのアイテムがあります。",
    ],
    closer: &[
        "お買い物をお楽しみください。",
        "ご感想をお聞かせください。",
        "またのご来店をお待ちしています。",
    ],
    subject_name: &[
        "{name}さんへ：{p}のご紹介",
        "{name}さんにおすすめの{p}",
        "{name}さん、次のお気に入りは？",
    ],
    subject_anon: &[
        "あなたへのおすすめ：{p}",
        "{p}のご紹介",
        "新しいおすすめをお届けします",
    ],
    subject_offer: &["今なら{offer}", "お見逃しなく：{offer}"],
    subject_short: &["あなたへのおすすめ", "新着のご提案"],
    preheader: &[
        "{p}などをご紹介します",
        "お好みに合わせて選びました",
        "あなただけの新しいアイデア",
    ],
    preheader_history: &["{h}を気に入ってくださった方へ", "{h}に合うアイテム"],
    preheader_offer: &["さらに{offer}"],
    preheader_short: &["あなただけに", "ぜひご覧ください"],
    offer_words: OfferWords {
        percent: "{n}%オフ",
        amount: "{a}引き",
        free_shipping: "送料無料",
        free_shipping_min: "{a}以上のご注文で送料無料",
        scope: "{s}が",
        everything: "全品",
        until: "{d}まで",
        code: "（クーポンコード：{c}）",
    },
    invented_offers: &[
        "次回のご注文は送料無料",
        "お急ぎ便が無料",
        "送料は当店が負担します",
        "2点購入で1点無料",
        "対象商品が半額",
        "残りわずか3点",
        "期間限定で再入荷",
        "ご注文から2,500円引き",
        "ご注文ごとにプレゼント付き",
        "30日間返品無料",
    ],
    invented_offer_frame: &[
        "感謝の気持ちを込めて、{offer}。",
        "お忘れなく：{offer}。",
        "さらに{offer}。",
    ],
    code_frame: &[
        "お会計時にコード{code}をご入力ください。",
        "クーポンコードは{code}です。",
    ],
    link_frame: &["詳しくは{link}をご覧ください。", "{link}で今すぐチェック。"],
    wrong_price_frame: &["{p}が今だけ{price}。", "{p}を{price}でどうぞ。"],
    given_names: &["さくら", "ゆうき", "はるか", "けんた", "あおい"],
    surnames: &["佐藤", "鈴木", "高橋", "田中", "伊藤"],
    month_names: None,
};

/// A few common offer scopes in each language; anything else is kept as the merchant wrote it.
pub fn translate_scope(lang: Lang, scope: &str) -> String {
    let key = scope.trim().to_lowercase();
    let table: &[(&str, [&str; 10])] = &[
        (
            "outerwear",
            [
                "outerwear",
                "Oberbekleidung",
                "les vêtements d'extérieur",
                "ropa de abrigo",
                "capispalla",
                "bovenkleding",
                "agasalhos",
                "ytterkläder",
                "odzież wierzchnią",
                "アウター",
            ],
        ),
        (
            "jackets",
            [
                "jackets",
                "Jacken",
                "les vestes",
                "chaquetas",
                "giacche",
                "jassen",
                "casacos",
                "jackor",
                "kurtki",
                "ジャケット",
            ],
        ),
        (
            "shoes",
            [
                "shoes",
                "Schuhe",
                "les chaussures",
                "calzado",
                "scarpe",
                "schoenen",
                "calçado",
                "skor",
                "buty",
                "シューズ",
            ],
        ),
        (
            "accessories",
            [
                "accessories",
                "Accessoires",
                "les accessoires",
                "accesorios",
                "accessori",
                "accessoires",
                "acessórios",
                "accessoarer",
                "akcesoria",
                "アクセサリー",
            ],
        ),
        (
            "bags",
            [
                "bags",
                "Taschen",
                "les sacs",
                "bolsos",
                "borse",
                "tassen",
                "bolsas",
                "väskor",
                "torby",
                "バッグ",
            ],
        ),
    ];
    let idx = Lang::ALL.iter().position(|l| *l == lang).unwrap_or(0);
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, t)| t[idx].to_owned())
        .unwrap_or_else(|| scope.trim().to_owned())
}

/// Groups an integer's digits by three.
fn group(int: &str, sep: &str) -> String {
    let digits: Vec<char> = int.chars().collect();
    let mut out = String::new();
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(*c);
    }
    out
}

/// A decimal string ("10", "10.5", "1299.00") as (integer digits, two fraction digits).
pub fn split_decimal(amount: &str) -> Option<(String, String)> {
    let a = amount.trim();
    let (int, frac) = a.split_once('.').unwrap_or((a, ""));
    if int.is_empty() || !int.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.chars().all(|c| c.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    Some((int.to_owned(), format!("{frac:0<2}")))
}

fn symbol(currency: &str) -> Option<&'static str> {
    Some(match currency {
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "JPY" => "¥",
        "SEK" | "NOK" | "DKK" => "kr",
        "PLN" => "zł",
        "BRL" => "R$",
        "CAD" => "CA$",
        "AUD" => "A$",
        _ => return None,
    })
}

/// A decimal amount in `currency`, the way `lang` writes money: en `$1,299.00`, de `1.299,00 €`,
/// nl `€ 1.299,00`, sv `1 299,00 kr`, ja `1,299円`.
pub fn money(lang: Lang, amount: &str, currency: &str) -> String {
    let Some((int, frac)) = split_decimal(amount) else {
        return format!("{amount} {currency}");
    };
    let currency = currency.to_ascii_uppercase();
    let no_decimals = matches!(currency.as_str(), "JPY" | "KRW");
    let (dec, grp) = match lang {
        Lang::En | Lang::Ja => (".", ","),
        Lang::Fr | Lang::Sv | Lang::Pl => (",", " "),
        _ => (",", "."),
    };
    let number = if no_decimals {
        group(&int, grp)
    } else {
        format!("{}{dec}{frac}", group(&int, grp))
    };
    let sym = symbol(&currency);
    match (lang, sym) {
        (Lang::Ja, _) if currency == "JPY" => format!("{number}円"),
        (Lang::En | Lang::Ja, Some(s)) if !matches!(s, "kr" | "zł") => format!("{s}{number}"),
        (Lang::En | Lang::Ja, _) => format!("{number} {currency}"),
        (Lang::Nl, Some(s)) | (Lang::Pt, Some(s @ "R$")) => format!("{s} {number}"),
        (_, Some(s)) => format!("{number} {s}"),
        (_, None) => format!("{number} {currency}"),
    }
}

/// An ISO date (YYYY-MM-DD) as `lang` writes it.
pub fn date(lang: Lang, iso: &str) -> String {
    let parts: Vec<&str> = iso.trim().split('-').collect();
    let [y, m, d] = parts[..] else {
        return iso.to_owned();
    };
    let (Ok(mi), Ok(di)) = (m.parse::<usize>(), d.parse::<u32>()) else {
        return iso.to_owned();
    };
    if !(1..=12).contains(&mi) {
        return iso.to_owned();
    }
    match lang {
        Lang::En => {
            let months = EN.month_names.map(|n| n[mi - 1]).unwrap_or(m);
            format!("{months} {di}, {y}")
        }
        Lang::De | Lang::Pl => format!("{d}.{m}.{y}"),
        Lang::Fr | Lang::Es | Lang::It | Lang::Pt => format!("{d}/{m}/{y}"),
        Lang::Nl => format!("{d}-{m}-{y}"),
        Lang::Sv => format!("{y}-{m}-{d}"),
        Lang::Ja => format!("{y}年{mi}月{di}日"),
    }
}

/// A whole percentage as `lang` writes it ("20%", "20 %").
pub fn percent(lang: Lang, n: u64) -> String {
    let w = lang.bank().offer_words.percent;
    w.replace("{n}", &n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_follows_each_languages_conventions() {
        assert_eq!(money(Lang::En, "1299", "USD"), "$1,299.00");
        assert_eq!(money(Lang::De, "10.00", "EUR"), "10,00 €");
        assert_eq!(money(Lang::Fr, "1299.5", "EUR"), "1 299,50 €");
        assert_eq!(money(Lang::Nl, "10", "EUR"), "€ 10,00");
        assert_eq!(money(Lang::Sv, "249.00", "SEK"), "249,00 kr");
        assert_eq!(money(Lang::Ja, "1000", "JPY"), "1,000円");
        assert_eq!(money(Lang::En, "10.00", "SEK"), "10.00 SEK");
        assert_eq!(money(Lang::Pt, "10.00", "BRL"), "R$ 10,00");
    }

    #[test]
    fn dates_follow_each_languages_conventions() {
        assert_eq!(date(Lang::De, "2026-12-24"), "24.12.2026");
        assert_eq!(date(Lang::En, "2026-12-24"), "December 24, 2026");
        assert_eq!(date(Lang::Ja, "2026-01-05"), "2026年1月5日");
        assert_eq!(date(Lang::Sv, "2026-12-24"), "2026-12-24");
    }

    #[test]
    fn tags_map_to_their_primary_language() {
        assert_eq!(Lang::from_tag("de-AT"), Some(Lang::De));
        assert_eq!(Lang::from_tag("pt_BR"), Some(Lang::Pt));
        assert_eq!(Lang::from_tag("tr"), None);
    }
}
