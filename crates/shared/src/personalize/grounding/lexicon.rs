//! Offer and promise vocabulary in every language we write, by concept.
//!
//! Numbers, codes and links are checked without words (see `numbers`); what remains are the
//! promises that carry no digit: "free shipping", "back in stock", "lifetime warranty". Each is
//! a concept that the stated offer, or a product's own description, may ground. Patterns are
//! matched on NFKC-folded, lower-cased text: `word` and `two words` match whole words, `stem*`
//! a word's start, `*part*` anywhere inside a word (German and Dutch compounds); Japanese
//! patterns match anywhere, as Japanese has no spaces.

/// What a phrase promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Concept {
    /// A price reduction, sale, or saving: grounded by a percent or amount offer.
    Discount,
    /// Half price: grounded only by a 50 % offer.
    HalfPrice,
    /// Something for nothing (a gift, a free item): never grounded by an offer.
    Free,
    /// Shipping or delivery; with `Free` in one sentence it is free shipping.
    Shipping,
    /// Free shipping in one word ("versandkostenfrei", "送料無料").
    FreeShipping,
    /// A code or coupon: grounded by an offer with a code.
    Code,
    /// Stock or urgency: "only a few left", "back in stock". Grounded only by a description.
    Scarcity,
    /// Time pressure: grounded by an offer with an end date.
    Deadline,
    /// Warranties, guarantees, free returns, refunds: grounded only by a description.
    Guarantee,
    /// Buy-x-get-y: no offer kind grounds it.
    Bundle,
    /// "Everything", "sitewide": widens a scoped offer when said of it.
    Everything,
}

impl Concept {
    pub fn name(self) -> &'static str {
        match self {
            Self::Discount => "discount",
            Self::HalfPrice => "half price",
            Self::Free => "something free",
            Self::Shipping => "shipping",
            Self::FreeShipping => "free shipping",
            Self::Code => "a code or coupon",
            Self::Scarcity => "a stock or scarcity claim",
            Self::Deadline => "a deadline",
            Self::Guarantee => "a guarantee or returns promise",
            Self::Bundle => "a bundle deal",
            Self::Everything => "an offer on everything",
        }
    }
}

use Concept::*;

type Entries = &'static [(Concept, &'static [&'static str])];

const EN: Entries = &[
    (
        Discount,
        &[
            "discount*",
            "% off",
            "off your",
            "off everything",
            "off all",
            "off sitewide",
            "sale",
            "on sale",
            "markdown*",
            "marked down",
            "reduced",
            "price drop",
            "save up to",
            "save on",
            "save big",
            "you save",
            "savings",
            "deal",
            "deals",
            "promo",
            "promotion*",
            "cashback",
            "cash back",
            "rebate*",
            "clearance",
            "cheaper",
            "lowest price*",
            "bargain*",
        ],
    ),
    (
        HalfPrice,
        &["half price", "half-price", "half off", "50/50"],
    ),
    (
        Free,
        &[
            "free",
            "for free",
            "complimentary",
            "on us",
            "on the house",
            "free gift",
            "gift with purchase",
            "at no cost",
            "no charge",
            "at no extra cost",
            "costs nothing",
        ],
    ),
    (
        Shipping,
        &[
            "shipping",
            "ships",
            "ship",
            "delivery",
            "delivered",
            "postage",
        ],
    ),
    (FreeShipping, &["freeship*"]),
    (
        Code,
        &[
            "code",
            "codes",
            "coupon*",
            "voucher*",
            "promo code",
            "promocode",
        ],
    ),
    (
        Scarcity,
        &[
            "only * left",
            "back in stock",
            "restock*",
            "selling fast",
            "sells out",
            "sell out",
            "almost gone",
            "nearly gone",
            "low stock",
            "limited stock",
            "few left",
            "while stocks last",
            "while supplies last",
            "going fast",
            "last few",
            "in high demand",
            "won't last",
        ],
    ),
    (
        Deadline,
        &[
            "ends tonight",
            "ends today",
            "ends soon",
            "today only",
            "tonight only",
            "this weekend only",
            "limited time",
            "limited-time",
            "last chance",
            "hurry",
            "final hours",
            "final day",
            "expires",
            "ending soon",
            "before it's gone",
            "before midnight",
        ],
    ),
    (
        Guarantee,
        &[
            "warrant*",
            "guarantee*",
            "money back",
            "money-back",
            "free return*",
            "free exchange*",
            "refund*",
            "risk-free",
            "no-risk",
            "price match*",
        ],
    ),
    (
        Bundle,
        &[
            "bogo",
            "buy one get one",
            "buy one, get one",
            "two for one",
            "2-for-1",
            "buy * get *",
            "pay for two",
            "pay for 2",
            "3 for 2",
            "three for two",
        ],
    ),
    (
        Everything,
        &[
            "everything",
            "sitewide",
            "site-wide",
            "storewide",
            "store-wide",
            "all products",
            "entire store",
            "whole store",
            "every order",
            "all orders",
            "anything",
            "all items",
            "entire order",
            "whole order",
        ],
    ),
];

const DE: Entries = &[
    (
        Discount,
        &[
            "*rabatt*",
            "reduziert*",
            "nachlass",
            "sale",
            "ersparnis",
            "sparpreis*",
            "du sparst",
            "sie sparen",
            "sonderangebot*",
            "im angebot",
            "schnäppchen",
            "preisnachlass",
            "günstiger",
            "aktion*",
            "sonderpreis*",
            "deal",
            "prozent",
        ],
    ),
    (
        HalfPrice,
        &["halben preis", "halber preis", "halbe preis", "halbpreis*"],
    ),
    (
        Free,
        &[
            "gratis*",
            "kostenlos*",
            "geschenkt",
            "umsonst",
            "gratiszugabe",
            "als geschenk",
            "ohne aufpreis",
            "kostenfrei*",
            "gibt's dazu",
            "gibt es dazu",
        ],
    ),
    (Shipping, &["*versand*", "liefer*", "zustellung", "porto"]),
    (
        FreeShipping,
        &[
            "versandkostenfrei*",
            "portofrei*",
            "*gratisversand*",
            "frei haus",
        ],
    ),
    (Code, &["code", "codes", "*gutschein*", "coupon*", "*code"]),
    (
        Scarcity,
        &[
            "nur noch wenige",
            "nur noch * stück",
            "wieder da",
            "wieder vorrätig",
            "wieder auf lager",
            "wieder verfügbar",
            "fast ausverkauft",
            "bald ausverkauft",
            "solange der vorrat reicht",
            "restbestand*",
            "begrenzte stückzahl",
            "wenige stück*",
            "nur wenige",
            "heiß begehrt",
            "schnell vergriffen",
        ],
    ),
    (
        Deadline,
        &[
            "nur heute",
            "endet heute",
            "letzte chance",
            "nur für kurze zeit",
            "für kurze zeit",
            "begrenzte zeit",
            "zeitlich begrenzt",
            "nur bis",
            "beeil*",
            "läuft ab",
            "endet bald",
        ],
    ),
    (
        Guarantee,
        &[
            "garantie*",
            "geld-zurück*",
            "geld zurück",
            "*rückgabe*",
            "*rücksend*",
            "*umtausch*",
            "erstattung",
            "rückerstattung",
        ],
    ),
    (
        Bundle,
        &[
            "2 für 1",
            "zwei für eins",
            "kaufe * bekomme *",
            "nimm * zahl *",
            "3 für 2",
            "drei für zwei",
        ],
    ),
    (
        Everything,
        &[
            "alles",
            "auf alle",
            "alle artikel",
            "alle produkte",
            "gesamte sortiment",
            "ganze sortiment",
            "sortimentsweit",
            "im ganzen shop",
            "jede bestellung",
        ],
    ),
];

const FR: Entries = &[
    (
        Discount,
        &[
            "remise*",
            "réduction*",
            "promo",
            "promos",
            "promotion*",
            "soldes",
            "rabais",
            "économise*",
            "économisez",
            "bon plan*",
            "prix barré*",
            "moins cher",
            "offre spéciale",
            "pourcent",
            "pour cent",
        ],
    ),
    (HalfPrice, &["moitié prix", "à moitié prix", "demi-tarif"]),
    (
        Free,
        &[
            "gratuit*",
            "en cadeau",
            "cadeau offert",
            "sans frais",
            "à nos frais",
            "offerte",
            "offertes",
            "est offert",
            "sont offerts",
        ],
    ),
    (
        Shipping,
        &[
            "livraison*",
            "livré*",
            "expédition*",
            "frais de port",
            "port",
        ],
    ),
    (
        FreeShipping,
        &[
            "franco de port",
            "port offert",
            "livraison offerte",
            "frais de port offerts",
            "expédition offerte",
        ],
    ),
    (
        Code,
        &[
            "code",
            "codes",
            "coupon*",
            "bon de réduction",
            "code promo",
            "bon d'achat",
        ],
    ),
    (
        Scarcity,
        &[
            "de retour en stock",
            "retour en stock",
            "à nouveau disponible",
            "bientôt épuisé*",
            "presque épuisé*",
            "dernières pièces",
            "il ne reste que",
            "il ne reste plus que",
            "ne reste que",
            "stock limité",
            "jusqu'à épuisement",
            "quantités limitées",
            "part vite",
            "partent vite",
            "s'arrache*",
        ],
    ),
    (
        Deadline,
        &[
            "aujourd'hui seulement",
            "dernière chance",
            "durée limitée",
            "temps limité",
            "pour peu de temps",
            "se termine",
            "jusqu'à ce soir",
            "dépêchez-vous",
        ],
    ),
    (
        Guarantee,
        &[
            "garanti*",
            "satisfait ou remboursé",
            "rembours*",
            "retours gratuits",
            "retour gratuit",
            "échange gratuit",
            "échanges gratuits",
        ],
    ),
    (
        Bundle,
        &[
            "deux pour un",
            "2 pour 1",
            "1 acheté",
            "un acheté",
            "achetez * recevez *",
        ],
    ),
    (
        Everything,
        &[
            "tout le site",
            "sur tout",
            "tous les articles",
            "tout le magasin",
            "toute la boutique",
            "tous les produits",
            "toute commande",
            "toutes les commandes",
            "sur l'ensemble",
        ],
    ),
];

const ES: Entries = &[
    (
        Discount,
        &[
            "descuento*",
            "rebaja*",
            "rebajado*",
            "oferta*",
            "ahorra*",
            "ahorro",
            "promoción*",
            "promo",
            "liquidación",
            "más barato",
            "chollo*",
            "por ciento",
        ],
    ),
    (
        HalfPrice,
        &["mitad de precio", "a mitad de precio", "medio precio"],
    ),
    (
        Free,
        &[
            "gratis",
            "gratuito*",
            "gratuita*",
            "de regalo",
            "regalamos",
            "sin coste",
            "sin costo",
            "sin cargo",
            "te lo regalamos",
            "corre de nuestra cuenta",
            "corre por nuestra cuenta",
        ],
    ),
    (Shipping, &["envío*", "envio*", "entrega*", "enviamos"]),
    (FreeShipping, &["portes gratis", "portes gratuitos"]),
    (
        Code,
        &[
            "código",
            "códigos",
            "codigo",
            "cupón",
            "cupon",
            "cupones",
            "vales",
            "vale de descuento",
        ],
    ),
    (
        Scarcity,
        &[
            "últimas unidades",
            "quedan pocas",
            "quedan pocos",
            "de nuevo disponible",
            "vuelve a estar disponible",
            "ya disponible de nuevo",
            "de vuelta en stock",
            "agotándose",
            "casi agotado*",
            "hasta agotar",
            "stock limitado",
            "solo quedan",
        ],
    ),
    (
        Deadline,
        &[
            "solo hoy",
            "sólo hoy",
            "última oportunidad",
            "ultima oportunidad",
            "tiempo limitado",
            "por tiempo limitado",
            "termina hoy",
            "date prisa",
        ],
    ),
    (
        Guarantee,
        &[
            "garantía*",
            "garantia*",
            "devolución gratuita",
            "devoluciones gratuitas",
            "devolución gratis",
            "devoluciones gratis",
            "reembolso*",
            "te devolvemos",
        ],
    ),
    (
        Bundle,
        &[
            "dos por uno",
            "2x1",
            "2 por 1",
            "compra * lleva *",
            "llévate * paga *",
        ],
    ),
    (
        Everything,
        &[
            "en todo",
            "toda la tienda",
            "todos los productos",
            "todo el catálogo",
            "todo el sitio",
            "todos los artículos",
            "cualquier pedido",
            "todos los pedidos",
        ],
    ),
];

const IT: Entries = &[
    (
        Discount,
        &[
            "sconto",
            "sconti",
            "scontat*",
            "scontistica",
            "saldi",
            "offerta*",
            "offerte",
            "risparmi*",
            "promozion*",
            "promo",
            "ribass*",
            "prezzo speciale",
            "per cento",
        ],
    ),
    (HalfPrice, &["metà prezzo", "a metà prezzo"]),
    (
        Free,
        &[
            "gratis",
            "gratuit*",
            "in omaggio",
            "omaggio",
            "in regalo",
            "senza costi",
            "a costo zero",
            "offriamo noi",
            "offerta da noi",
        ],
    ),
    (
        Shipping,
        &["spedizion*", "consegna", "consegne", "spediamo"],
    ),
    (FreeShipping, &[]),
    (
        Code,
        &[
            "codice",
            "codici",
            "coupon",
            "buono sconto",
            "buoni sconto",
            "buono regalo",
            "voucher",
        ],
    ),
    (
        Scarcity,
        &[
            "ultimi pezzi",
            "quasi esaurit*",
            "di nuovo disponibil*",
            "tornat* disponibil*",
            "nuovamente disponibil*",
            "fino a esaurimento",
            "scorte limitate",
            "disponibilità limitata",
            "vanno a ruba",
            "solo pochi",
        ],
    ),
    (
        Deadline,
        &[
            "solo oggi",
            "ultima occasione",
            "ultima possibilità",
            "tempo limitato",
            "per poco tempo",
            "scade",
            "affrettati",
            "sbrigati",
        ],
    ),
    (
        Guarantee,
        &[
            "garanzia*",
            "garantit*",
            "reso gratuito",
            "resi gratuiti",
            "rimbors*",
            "soddisfatti o rimborsati",
        ],
    ),
    (Bundle, &["prendi * paghi *", "2x1", "due al prezzo di uno"]),
    (
        Everything,
        &[
            "su tutto",
            "tutto il negozio",
            "tutti i prodotti",
            "tutto il sito",
            "tutti gli articoli",
            "qualsiasi ordine",
            "tutti gli ordini",
        ],
    ),
];

const NL: Entries = &[
    (
        Discount,
        &[
            "*korting*",
            "uitverkoop",
            "aanbieding*",
            "bespaar*",
            "sale",
            "afgeprijsd",
            "voordeelprijs",
            "met voordeel",
            "goedkoper",
            "procent",
        ],
    ),
    (HalfPrice, &["halve prijs", "voor de halve prijs"]),
    (
        Free,
        &[
            "gratis*",
            "kosteloos",
            "gratis cadeau",
            "cadeau bij",
            "voor niets",
            "zonder kosten",
            "op onze kosten",
        ],
    ),
    (
        Shipping,
        &["*verzend*", "bezorg*", "levering", "geleverd", "verzonden"],
    ),
    (FreeShipping, &["franco"]),
    (
        Code,
        &[
            "code",
            "codes",
            "*kortingscode*",
            "coupon*",
            "waardebon*",
            "voucher*",
        ],
    ),
    (
        Scarcity,
        &[
            "weer op voorraad",
            "weer leverbaar",
            "terug op voorraad",
            "bijna uitverkocht",
            "op = op",
            "zolang de voorraad strekt",
            "beperkte voorraad",
            "snel weg",
            "laatste stuks",
        ],
    ),
    (
        Deadline,
        &[
            "alleen vandaag",
            "laatste kans",
            "beperkte tijd",
            "wees er snel bij",
            "verloopt",
        ],
    ),
    (
        Guarantee,
        &[
            "garantie*",
            "gratis retour*",
            "retourneren",
            "niet goed, geld terug",
            "niet goed geld terug",
            "terugbetal*",
        ],
    ),
    (Bundle, &["2 halen 1 betalen", "3 voor 2", "1+1"]),
    (
        Everything,
        &[
            "op alles",
            "hele assortiment",
            "het hele assortiment",
            "alle producten",
            "de hele winkel",
            "elke bestelling",
            "alle bestellingen",
        ],
    ),
];

const PT: Entries = &[
    (
        Discount,
        &[
            "desconto*",
            "promoção",
            "promoções",
            "promo",
            "liquidação",
            "economiz*",
            "oferta*",
            "mais barato",
            "saldos",
            "por cento",
        ],
    ),
    (
        HalfPrice,
        &["metade do preço", "pela metade do preço", "meio preço"],
    ),
    (
        Free,
        &[
            "grátis",
            "gratis",
            "gratuit*",
            "de brinde",
            "brinde*",
            "de presente",
            "sem custo*",
            "por nossa conta",
            "oferecemos",
        ],
    ),
    (Shipping, &["frete", "envio*", "entrega*", "portes"]),
    (FreeShipping, &[]),
    (
        Code,
        &[
            "código", "códigos", "codigo", "cupom", "cupons", "cupão", "cupões", "voucher*",
        ],
    ),
    (
        Scarcity,
        &[
            "de volta ao estoque",
            "de volta ao stock",
            "de volta em estoque",
            "novamente disponível",
            "últimas unidades",
            "quase esgotad*",
            "esgota*",
            "enquanto durarem",
            "estoque limitado",
            "stock limitado",
            "poucas unidades",
        ],
    ),
    (
        Deadline,
        &[
            "só hoje",
            "apenas hoje",
            "somente hoje",
            "última chance",
            "última oportunidade",
            "tempo limitado",
            "por tempo limitado",
            "termina hoje",
        ],
    ),
    (
        Guarantee,
        &[
            "garantia*",
            "devolução grátis",
            "devolução gratuita",
            "devoluções grátis",
            "reembolso*",
        ],
    ),
    (
        Bundle,
        &[
            "leve * pague *",
            "compre * leve *",
            "2 por 1",
            "dois por um",
        ],
    ),
    (
        Everything,
        &[
            "em tudo",
            "toda a loja",
            "todos os produtos",
            "todo o site",
            "todos os artigos",
            "qualquer pedido",
            "todos os pedidos",
        ],
    ),
];

const SV: Entries = &[
    (
        Discount,
        &[
            "*rabatt*",
            "rea",
            "reat",
            "realisation*",
            "erbjudande*",
            "spara upp till",
            "spara pengar",
            "sänkt*",
            "nedsatt*",
            "billigare",
            "kampanj*",
            "procent",
        ],
    ),
    (HalfPrice, &["halva priset", "till halva priset"]),
    (
        Free,
        &[
            "gratis*",
            "kostnadsfri*",
            "bjuder på",
            "på köpet",
            "utan kostnad",
        ],
    ),
    (Shipping, &["*frakt*", "leverans*", "levereras", "skickas"]),
    (FreeShipping, &["fraktfri*", "fri frakt"]),
    (
        Code,
        &[
            "kod",
            "koden",
            "koder",
            "*rabattkod*",
            "kupong*",
            "värdecheck*",
        ],
    ),
    (
        Scarcity,
        &[
            "tillbaka i lager",
            "i lager igen",
            "åter i lager",
            "nästan slut",
            "nästan slutsåld*",
            "begränsat lager",
            "så länge lagret räcker",
            "snart slutsåld*",
            "slutsåld*",
            "tar slut",
            "få kvar",
            "bara * kvar",
            "går åt snabbt",
        ],
    ),
    (
        Deadline,
        &[
            "endast idag",
            "bara idag",
            "sista chansen",
            "begränsad tid",
            "under begränsad tid",
            "skynda*",
        ],
    ),
    (
        Guarantee,
        &[
            "garanti*",
            "fri retur",
            "fria returer",
            "öppet köp",
            "pengarna tillbaka",
            "återbetal*",
        ],
    ),
    (
        Bundle,
        &[
            "köp * betala för *",
            "2 för 1",
            "ta * betala för *",
            "betala för två",
            "betala för 2",
            "3 för 2",
            "tre för två",
        ],
    ),
    (
        Everything,
        &[
            "på allt",
            "hela sortimentet",
            "alla produkter",
            "hela butiken",
            "alla varor",
            "varje beställning",
            "alla beställningar",
        ],
    ),
];

const PL: Entries = &[
    (
        Discount,
        &[
            "zniżk*",
            "rabat*",
            "promocj*",
            "wyprzedaż*",
            "oszczędź",
            "oszczędzasz",
            "oszczędności",
            "taniej",
            "przecen*",
            "procent",
        ],
    ),
    (HalfPrice, &["pół ceny", "za pół ceny", "połowę ceny"]),
    (
        Free,
        &[
            "gratis",
            "za darmo",
            "darmow*",
            "bezpłatn*",
            "w prezencie",
            "bez opłat",
            "na nasz koszt",
        ],
    ),
    (Shipping, &["dostaw*", "wysyłk*", "przesyłk*"]),
    (FreeShipping, &[]),
    (
        Code,
        &[
            "kod", "kodem", "kodu", "kody", "kupon*", "voucher*", "bon", "bonu", "bonem",
        ],
    ),
    (
        Scarcity,
        &[
            "znów dostępn*",
            "ponownie dostępn*",
            "ponownie w magazynie",
            "ostatnie sztuki",
            "prawie wyprzedan*",
            "do wyczerpania zapasów",
            "ograniczona ilość",
            "zostało tylko",
            "zostały tylko",
            "szybko znika*",
        ],
    ),
    (
        Deadline,
        &[
            "tylko dziś",
            "tylko dzisiaj",
            "ostatnia szansa",
            "ograniczony czas",
            "przez ograniczony czas",
            "pospiesz się",
            "kończy się",
            "wygasa",
        ],
    ),
    (
        Guarantee,
        &[
            "gwarancj*",
            "gwarantowan*",
            "darmowy zwrot",
            "darmowe zwroty",
            "bezpłatny zwrot",
            "zwrot pieniędzy",
            "zwrot kosztów",
        ],
    ),
    (
        Bundle,
        &[
            "2 w cenie 1",
            "dwa w cenie jednego",
            "kup * otrzymasz *",
            "1+1",
        ],
    ),
    (
        Everything,
        &[
            "na wszystko",
            "cały asortyment",
            "całego asortymentu",
            "wszystkie produkty",
            "cały sklep",
            "każde zamówienie",
            "wszystkie zamówienia",
        ],
    ),
];

const JA: Entries = &[
    (
        Discount,
        &[
            "割引",
            "値引",
            "%オフ",
            "割オフ",
            "円オフ",
            "%off",
            "セール",
            "お得",
            "特価",
            "割安",
            "安く",
            "プライスダウン",
            "sale",
            "%引",
            "％引",
            "パーセント",
        ],
    ),
    (HalfPrice, &["半額", "半値"]),
    (
        Free,
        &[
            "無料",
            "タダ",
            "ただで",
            "プレゼント中",
            "無料プレゼント",
            "もれなく",
            "おまけ",
            "贈呈",
        ],
    ),
    (Shipping, &["送料", "配送", "配達", "発送"]),
    (FreeShipping, &["送料無料", "送料込", "送料ゼロ"]),
    (
        Code,
        &[
            "クーポン",
            "クーポンコード",
            "割引コード",
            "プロモコード",
            "コードを入力",
            "code",
        ],
    ),
    (
        Scarcity,
        &[
            "再入荷",
            "残りわずか",
            "在庫僅少",
            "在庫わずか",
            "在庫限り",
            "売り切れ間近",
            "品薄",
            "数量限定",
            "完売間近",
            "なくなり次第",
        ],
    ),
    (
        Deadline,
        &[
            "本日限り",
            "今日だけ",
            "期間限定",
            "最後のチャンス",
            "今だけ",
            "お急ぎ",
            "急いで",
            "まもなく終了",
            "終了間近",
        ],
    ),
    (
        Guarantee,
        &["保証", "返品無料", "返金", "返品保証", "交換無料"],
    ),
    (Bundle, &["1つ買うと", "2つ目無料", "まとめ買い"]),
    (
        Everything,
        &[
            "全品",
            "全商品",
            "すべての商品",
            "全アイテム",
            "サイト全体",
            "店内全品",
        ],
    ),
];

/// Words that, just before a match, negate it ("no code needed", "ohne Gutschein").
const NEGATIONS: &[(&str, &[&str])] = &[
    ("en", &["no", "not", "without", "never", "nor"]),
    (
        "de",
        &[
            "kein", "keine", "keinen", "keinem", "keiner", "ohne", "nicht", "nie",
        ],
    ),
    ("fr", &["pas", "sans", "aucun", "aucune", "ni", "jamais"]),
    (
        "es",
        &["sin", "ningún", "ninguna", "ninguno", "no", "ni", "nunca"],
    ),
    (
        "it",
        &[
            "senza", "niente", "nessun", "nessuna", "nessuno", "non", "né", "mai",
        ],
    ),
    ("nl", &["geen", "zonder", "niet", "nooit"]),
    ("pt", &["sem", "nenhum", "nenhuma", "não", "nem", "nunca"]),
    ("sv", &["ingen", "inget", "inga", "utan", "inte", "aldrig"]),
    (
        "pl",
        &["bez", "żadnych", "żadnego", "żadnej", "nie", "nigdy"],
    ),
];

/// After a Japanese match, these negate it ("クーポン不要").
const JA_NEGATIONS_AFTER: &[&str] = &[
    "不要",
    "なし",
    "無し",
    "ありません",
    "ございません",
    "ではなく",
    "じゃなく",
];

fn entries(language: &str) -> Entries {
    match language {
        "de" => DE,
        "fr" => FR,
        "es" => ES,
        "it" => IT,
        "nl" => NL,
        "pt" => PT,
        "sv" => SV,
        "pl" => PL,
        "ja" => JA,
        _ => EN,
    }
}

/// The primary subtag of a BCP-47 tag: "de-AT" → "de".
pub fn primary(language: &str) -> String {
    language
        .split(['-', '_'])
        .next()
        .unwrap_or("en")
        .to_ascii_lowercase()
}

/// One concept found, with the phrase as written (folded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub concept: Concept,
    pub phrase: String,
    /// Index of the sentence it is in.
    pub sentence: usize,
}

/// Every concept the folded text states in `language`, English marketing loanwords included
/// (copy in any language borrows "Sale", "free shipping"), negated ones left out.
pub fn find(folded: &str, language: &str) -> Vec<Hit> {
    let language = primary(language);
    let mut hits = Vec::new();
    for (sentence_index, sentence) in sentences(folded).into_iter().enumerate() {
        if language == "ja" {
            find_ja(sentence, sentence_index, &mut hits);
            continue;
        }
        let negations = NEGATIONS
            .iter()
            .find(|(l, _)| *l == language)
            .map_or(&[][..], |(_, n)| *n);
        let mut lists = vec![entries(&language)];
        if language != "en" {
            lists.push(LOANWORDS);
        }
        // A negation holds to the end of its clause: "pas de code promo ni de réduction",
        // "ohne Gutschein oder Rabatt – nur gute Ausrüstung". Phrases match across clauses
        // ("buy one, get one").
        let mut tokens = Vec::new();
        let mut negated = Vec::new();
        for clause in sentence.split([',', ';', ':', '–', '—', '(', ')']) {
            let mut inside = false;
            for t in self::tokens(clause) {
                inside |= negations.contains(&t.as_str());
                negated.push(inside);
                tokens.push(t);
            }
        }
        for list in &lists {
            for (concept, patterns) in *list {
                for pattern in *patterns {
                    let Some(at) = match_tokens(&tokens, pattern) else {
                        continue;
                    };
                    let is_negation = negations.contains(&tokens[at].as_str());
                    if (!negated[at] || is_negation) && !idiom(&tokens, at, pattern) {
                        hits.push(Hit {
                            concept: *concept,
                            phrase: pattern.replace('*', ""),
                            sentence: sentence_index,
                        });
                    }
                }
            }
        }
    }
    hits
}

/// "Feel free", "free of PFCs", "free time": the English word that promises nothing.
fn idiom(tokens: &[String], at: usize, pattern: &str) -> bool {
    if pattern != "free" {
        return false;
    }
    let before = at.checked_sub(1).map(|i| tokens[i].as_str());
    let after = tokens.get(at + 1).map(String::as_str);
    matches!(before, Some("feel" | "hands" | "set" | "break"))
        || matches!(
            after,
            Some("of" | "from" | "time" | "spirit" | "spirited" | "range" | "to")
        )
}

/// English marketing words other languages' copy borrows, unambiguous in every one of them.
const LOANWORDS: Entries = &[
    (Discount, &["discount*", "% off"]),
    (FreeShipping, &["free shipping", "free delivery"]),
    (Code, &["promo code", "promocode", "coupon code"]),
    (Scarcity, &["back in stock", "sold out soon", "last chance"]),
    (Guarantee, &["money back", "money-back"]),
    (Bundle, &["bogo", "buy one get one"]),
];

fn find_ja(sentence: &str, sentence_index: usize, hits: &mut Vec<Hit>) {
    for (concept, patterns) in JA {
        for pattern in *patterns {
            let Some(at) = sentence.find(pattern) else {
                continue;
            };
            // Negated when the rest of its clause says so: "クーポンや割引のご案内ではなく".
            let after = &sentence[at + pattern.len()..];
            let clause = after.split(['、', '，', ',']).next().unwrap_or(after);
            let negated = JA_NEGATIONS_AFTER.iter().any(|n| clause.contains(n));
            if !negated {
                hits.push(Hit {
                    concept: *concept,
                    phrase: (*pattern).to_owned(),
                    sentence: sentence_index,
                });
            }
        }
    }
}

/// Sentences of folded text: split after . ! ? 。！？ and line breaks.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(at, c)) in chars.iter().enumerate() {
        let next_is_space = chars.get(i + 1).is_none_or(|(_, n)| n.is_whitespace());
        let ends = matches!(c, '!' | '?' | '。' | '！' | '？' | '\n')
            || (c == '.' && next_is_space && !before_is_digit(&chars, i));
        if ends {
            out.push(&text[start..at + c.len_utf8()]);
            start = at + c.len_utf8();
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn before_is_digit(chars: &[(usize, char)], i: usize) -> bool {
    // "bis 24.12." ends no sentence in German dates.
    i > 0 && chars[i - 1].1.is_ascii_digit() && chars.get(i + 1).is_some()
}

/// Words of folded text. Hyphens and apostrophes inside a word keep it whole ("plastic-free"
/// is not "free"); `%` is a token of its own, so "% off" can be a pattern.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let inner_joiner = matches!(c, '-' | '\'' | '’')
            && !current.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() || inner_joiner || (c == '=' && current.is_empty()) {
            current.push(if c == '’' { '\'' } else { c });
        } else {
            if !current.is_empty() {
                let word = std::mem::take(&mut current);
                // "shipping's on us" is about shipping.
                out.push(word.strip_suffix("'s").map_or(word.clone(), str::to_owned));
            }
            if c == '%' || c == '+' || c == '/' {
                out.push(c.to_string());
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Where `pattern` first matches a run of `tokens`, if it does. In a pattern, a word `*` alone
/// matches any one token; `stem*` a token's start; `*part*` inside a token.
fn match_tokens(hay: &[String], pattern: &str) -> Option<usize> {
    let words = tokens(pattern);
    let parts: Vec<&str> = if pattern.contains('*') {
        pattern.split_whitespace().collect()
    } else {
        words.iter().map(String::as_str).collect()
    };
    if parts.is_empty() || parts.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - parts.len()).find(|&start| {
        parts
            .iter()
            .zip(&hay[start..])
            .all(|(p, t)| token_matches(p, t))
    })
}

fn token_matches(pattern: &str, token: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        _ if pattern == "*" => true,
        (Some(rest), _) if rest.ends_with('*') => token.contains(rest.trim_end_matches('*')),
        (Some(rest), _) => token.ends_with(rest),
        (None, Some(stem)) => token.starts_with(stem),
        (None, None) => token == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concepts(text: &str, language: &str) -> Vec<Concept> {
        let folded = super::super::normalize::fold(text);
        find(&folded, language)
            .into_iter()
            .map(|h| h.concept)
            .collect()
    }

    #[test]
    fn free_shipping_is_found_in_every_language_we_write() {
        for (text, lang) in [
            ("Shipping's on us this week", "en"),
            ("Kostenloser Versand für dich", "de"),
            ("Livraison offerte dès aujourd'hui", "fr"),
            ("Envío gratis en tu pedido", "es"),
            ("Spedizione gratuita su questo zaino", "it"),
            ("Gratis verzending op je bestelling", "nl"),
            ("Frete grátis para você", "pt"),
            ("Fri frakt på allt", "sv"),
            ("Darmowa dostawa do domu", "pl"),
            ("今なら送料無料です", "ja"),
        ] {
            let c = concepts(text, lang);
            assert!(
                c.contains(&FreeShipping) || (c.contains(&Free) && c.contains(&Shipping)),
                "{lang}: {text} → {c:?}"
            );
        }
    }

    #[test]
    fn compounds_match_inside_words() {
        assert!(concepts("Jetzt versandkostenfrei bestellen", "de").contains(&FreeShipping));
        assert!(concepts("Mit dem Rabattcode sparen", "de").contains(&Code));
        assert!(concepts("Met de kortingscode", "nl").contains(&Discount));
    }

    #[test]
    fn hyphenated_compounds_are_not_the_bare_word() {
        assert!(!concepts("A PFC-free, plastic-free shell", "en").contains(&Free));
        assert!(concepts("It's free with any order", "en").contains(&Free));
    }

    #[test]
    fn a_negated_phrase_is_no_promise() {
        assert!(!concepts("No code needed, no catch.", "en").contains(&Code));
        assert!(!concepts("Ganz ohne Gutschein.", "de").contains(&Code));
        assert!(!concepts("クーポン不要です", "ja").contains(&Code));
    }

    #[test]
    fn scarcity_with_a_gap_word_is_found() {
        assert!(concepts("Only 3 left in your size", "en").contains(&Scarcity));
        assert!(concepts("Bara 2 kvar!", "sv").contains(&Scarcity));
        assert!(concepts("再入荷しました", "ja").contains(&Scarcity));
    }

    #[test]
    fn ordinary_copy_states_nothing() {
        for (text, lang) in [
            ("Your new trail companion is ready for the weekend.", "en"),
            ("Ein warmer Begleiter für den Winter.", "de"),
            ("Un compagnon idéal pour vos randonnées.", "fr"),
            ("冬のハイキングにぴったりのジャケットです。", "ja"),
        ] {
            assert_eq!(concepts(text, lang), vec![], "{text}");
        }
    }

    #[test]
    fn sentences_do_not_split_dates() {
        assert_eq!(sentences("bis 24.12.2026 gültig. Danach nicht").len(), 2);
    }
}
