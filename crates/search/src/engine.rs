//! The tantivy index: schema, the writer thread, and relevance.
//!
//! Relevance is a bucket sort encoded in one score. Every query word becomes a disjunction
//! over the real terms of the index it may stand for ([`expand`]: the word itself, its
//! prefixes when it is the last word, and its typo variants within Meilisearch's budget,
//! found in each field's term dictionary with a Levenshtein automaton, at most
//! [`MAX_EXPANSIONS`] per word). Each (field, term) clause scores
//! `bucket(typos, field weight, exactness) · 100 + BM25 · 0.1`, a word keeps its best clause,
//! and the words' scores add up. The buckets are scaled so that fewer typos always win over
//! a better field, a better field over exactness, and BM25 (below 100 for ten words) only
//! orders hits within one bucket. Every word must match; when nothing does, words are
//! dropped from the end.

use anyhow::Context;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, EmptyQuery,
    FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, SimpleTokenizer, TextAnalyzer};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher,
    SegmentReader, TantivyDocument, Term,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::document::{Change, DURATION_MS, IndexedEvent};
use crate::query::{
    Facets, Highlight, Hit, MAX_QUERY_WORDS, SearchError, SearchRequest, SearchResults, Sort,
    Suggestions,
};
use crate::{EventIndex, Positions, Stream};

/// The schema's version: a change of schema or analysis bumps it, and an index of another
/// version is rebuilt from the stream.
pub const SCHEMA_VERSION: u32 = 2;
/// Most index terms one query word expands to.
pub const MAX_EXPANSIONS: usize = 50;
const TOKENIZER: &str = "evently";

/// The index's fields.
#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    name: Field,
    tags_text: Field,
    venue: Field,
    city_text: Field,
    description: Field,
    city: Field,
    city_key: Field,
    event_type: Field,
    status: Field,
    tag: Field,
    date: Field,
    price: Field,
    available: Field,
    order: Field,
    order_low: Field,
    doc: Field,
}

impl Fields {
    /// The text fields with their weight (name > tags, venue, city > description).
    fn text(&self) -> [(Field, u32); 5] {
        [
            (self.name, 3),
            (self.tags_text, 2),
            (self.venue, 2),
            (self.city_text, 2),
            (self.description, 1),
        ]
    }
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        id: b.add_text_field("id", STRING),
        name: b.add_text_field("name", text.clone()),
        tags_text: b.add_text_field("tags_text", text.clone()),
        venue: b.add_text_field("venue", text.clone()),
        city_text: b.add_text_field("city_text", text.clone()),
        description: b.add_text_field("description", text),
        city: b.add_text_field("city", STRING | FAST),
        city_key: b.add_text_field("city_key", STRING),
        event_type: b.add_text_field("type", STRING | FAST),
        status: b.add_text_field("status", STRING | FAST),
        tag: b.add_text_field("tag", STRING),
        date: b.add_i64_field("date", INDEXED | FAST),
        price: b.add_i64_field("price", INDEXED | FAST),
        available: b.add_i64_field("available", INDEXED | FAST),
        order: b.add_u64_field("order", FAST),
        order_low: b.add_u64_field("order_low", FAST),
        doc: b.add_text_field("doc", STORED),
    };
    (b.build(), fields)
}

/// Lowercase, ASCII-folded words: how both the index and queries see text.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The words of `text` as the index sees them.
pub fn words(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(t) = stream.next() {
        out.push(t.text.clone());
    }
    out
}

/// How many typos a word of `len` characters may have (Meilisearch: none up to 4, one from 5,
/// two from 9), none for a number.
fn typo_budget(word: &str) -> u8 {
    if word.chars().all(|c| c.is_ascii_digit()) {
        return 0;
    }
    match word.chars().count() {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// The typos between `word` and `term` (Damerau–Levenshtein, optimal string alignment): with
/// `prefix`, against the closest prefix of `term`. A different first letter costs one more.
pub fn typos(word: &str, term: &str, prefix: bool) -> u32 {
    let w: Vec<char> = word.chars().collect();
    let t: Vec<char> = term.chars().collect();
    let (n, m) = (w.len(), t.len());
    let mut d = vec![vec![0u32; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = u32::try_from(i).unwrap_or(u32::MAX);
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = u32::try_from(j).unwrap_or(u32::MAX);
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = u32::from(w[i - 1] != t[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && w[i - 1] == t[j - 2] && w[i - 2] == t[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    let base = if prefix {
        d[n].iter().copied().min().unwrap_or(0)
    } else {
        d[n][m]
    };
    match (w.first(), t.first()) {
        (Some(a), Some(b)) if a != b => base + 1,
        _ => base,
    }
}

/// One index term a query word stands for.
#[derive(Debug, Clone)]
struct Expansion {
    term: String,
    typos: u32,
    exact: bool,
    /// The text fields that hold it.
    fields: Vec<(Field, u32)>,
    doc_freq: u64,
}

/// The index terms `word` stands for in `fields` (see the module documentation), best first,
/// at most [`MAX_EXPANSIONS`].
fn expand(
    searcher: &Searcher,
    fields: &[(Field, u32)],
    word: &str,
    prefix: bool,
) -> tantivy::Result<Vec<Expansion>> {
    let budget = typo_budget(word);
    let mut found: HashMap<String, Expansion> = HashMap::new();
    let Some(&(first, _)) = fields.first() else {
        return Ok(Vec::new());
    };
    // The automaton depends on the word only: built once, run on every field and segment.
    let probe = Term::from_field_text(first, word);
    let automaton = if prefix {
        FuzzyTermQuery::new_prefix(probe, budget, true)
    } else {
        FuzzyTermQuery::new(probe, budget, true)
    }
    .automaton()?;
    for &(field, weight) in fields {
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(field)?;
            let mut stream = inverted.terms().search(&automaton).into_stream()?;
            while stream.advance() {
                let Ok(term) = std::str::from_utf8(stream.key()) else {
                    continue;
                };
                let doc_freq = u64::from(stream.value().doc_freq);
                if let Some(e) = found.get_mut(term) {
                    if !e.fields.iter().any(|(f, _)| *f == field) {
                        e.fields.push((field, weight));
                    }
                    e.doc_freq += doc_freq;
                    continue;
                }
                let cost = typos(word, term, prefix);
                if cost > u32::from(budget) {
                    continue;
                }
                found.insert(
                    term.to_owned(),
                    Expansion {
                        term: term.to_owned(),
                        typos: cost,
                        exact: term == word,
                        fields: vec![(field, weight)],
                        doc_freq,
                    },
                );
            }
        }
    }
    let mut all: Vec<Expansion> = found.into_values().collect();
    all.sort_by(|a, b| {
        (a.typos, !a.exact, std::cmp::Reverse(a.doc_freq), &a.term).cmp(&(
            b.typos,
            !b.exact,
            std::cmp::Reverse(b.doc_freq),
            &b.term,
        ))
    });
    all.truncate(MAX_EXPANSIONS);
    Ok(all)
}

/// The score bucket of one word's match: fewer typos over field weight over exactness, scaled
/// so that the sums over ten words keep that order (see the module documentation).
fn bucket(typos: u32, weight: u32, exact: bool) -> f32 {
    let typo_rank = 2u32.saturating_sub(typos);
    let v = typo_rank * 341 + weight * 11 + u32::from(exact);
    // Exact: at most 10 · 716 · 100, well inside f32's integers.
    #[allow(clippy::cast_precision_loss)]
    let v = (v * 100) as f32;
    v
}

/// The query of one word: its best (field, term) clause.
fn word_query(expansions: &[Expansion]) -> Box<dyn Query> {
    let mut disjuncts: Vec<Box<dyn Query>> = Vec::new();
    for e in expansions {
        for &(field, weight) in &e.fields {
            let term = Term::from_field_text(field, &e.term);
            let constant: Box<dyn Query> = Box::new(ConstScoreQuery::new(
                Box::new(TermQuery::new(term.clone(), IndexRecordOption::Basic)),
                bucket(e.typos, weight, e.exact),
            ));
            #[allow(clippy::cast_precision_loss)]
            let bm25: Box<dyn Query> = Box::new(BoostQuery::new(
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)),
                0.1 * weight as f32 / 3.0,
            ));
            disjuncts.push(Box::new(BooleanQuery::new(vec![
                (Occur::Must, constant),
                (Occur::Must, bm25),
            ])));
        }
    }
    if disjuncts.is_empty() {
        Box::new(EmptyQuery)
    } else {
        Box::new(DisjunctionMaxQuery::new(disjuncts))
    }
}

/// Which filter a facet count leaves out (its own, for disjunctive counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    City,
    Type,
    Status,
}

struct Searchable {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl Searchable {
    fn filter_query(&self, req: &SearchRequest, without: Option<Dim>) -> Vec<Box<dyn Query>> {
        let f = &self.fields;
        let filters = &req.filters;
        let mut out: Vec<Box<dyn Query>> = Vec::new();
        let any_of = |field: Field, values: &[String], lower: bool| -> Box<dyn Query> {
            let clauses = values
                .iter()
                .map(|v| {
                    let v = if lower {
                        v.trim().to_lowercase()
                    } else {
                        v.trim().to_owned()
                    };
                    let q: Box<dyn Query> = Box::new(TermQuery::new(
                        Term::from_field_text(field, &v),
                        IndexRecordOption::Basic,
                    ));
                    (Occur::Should, q)
                })
                .collect();
            Box::new(BooleanQuery::new(clauses))
        };
        if !filters.cities.is_empty() && without != Some(Dim::City) {
            out.push(any_of(f.city_key, &filters.cities, true));
        }
        if !filters.types.is_empty() && without != Some(Dim::Type) {
            out.push(any_of(f.event_type, &filters.types, false));
        }
        if without != Some(Dim::Status) {
            if filters.statuses.is_empty() {
                let shown: Vec<String> = ["UPCOMING", "ON_SALE", "SOLD_OUT"]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
                out.push(any_of(f.status, &shown, false));
            } else {
                out.push(any_of(f.status, &filters.statuses, false));
            }
        }
        for tag in &filters.tags {
            out.push(any_of(f.tag, std::slice::from_ref(tag), true));
        }
        // An event counts from its start until DURATION_MS later.
        let from = filters.from_ms.unwrap_or(req.now_ms);
        let lower = from.saturating_sub(DURATION_MS);
        let upper = filters.to_ms.map_or(Bound::Unbounded, |to| {
            Bound::Included(Term::from_field_i64(f.date, to))
        });
        out.push(Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_i64(f.date, lower)),
            upper,
        )));
        match filters.has_seats {
            Some(true) => out.push(Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_i64(f.available, 1)),
                Bound::Unbounded,
            ))),
            Some(false) => out.push(Box::new(RangeQuery::new(
                Bound::Unbounded,
                Bound::Included(Term::from_field_i64(f.available, 0)),
            ))),
            None => {}
        }
        if filters.min_price.is_some() || filters.max_price.is_some() {
            out.push(Box::new(RangeQuery::new(
                filters.min_price.map_or(Bound::Unbounded, |p| {
                    Bound::Included(Term::from_field_i64(f.price, p))
                }),
                filters.max_price.map_or(Bound::Unbounded, |p| {
                    Bound::Included(Term::from_field_i64(f.price, p))
                }),
            )));
        }
        out
    }

    fn combine(text: Option<&dyn Query>, filters: Vec<Box<dyn Query>>) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        clauses.push((
            Occur::Must,
            match text {
                Some(t) => t.box_clone(),
                None => Box::new(ConstScoreQuery::new(Box::new(AllQuery), 0.0)),
            },
        ));
        for f in filters {
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(f, 0.0))));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// The text query of `words` (the last one also a prefix when `prefix_last`) over
    /// `fields`, and the terms it stands for.
    fn text_query(
        &self,
        searcher: &Searcher,
        fields: &[(Field, u32)],
        words: &[String],
        prefix_last: bool,
    ) -> tantivy::Result<(Box<dyn Query>, HashSet<String>)> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut terms = HashSet::new();
        for (i, word) in words.iter().enumerate() {
            let prefix = prefix_last && i + 1 == words.len();
            let expansions = expand(searcher, fields, word, prefix)?;
            terms.extend(expansions.iter().map(|e| e.term.clone()));
            clauses.push((Occur::Must, word_query(&expansions)));
        }
        Ok((Box::new(BooleanQuery::new(clauses)), terms))
    }

    fn search(&self, req: &SearchRequest) -> tantivy::Result<SearchResults> {
        let searcher = self.reader.searcher();
        let mut all_words = words(&req.q);
        all_words.truncate(MAX_QUERY_WORDS);
        let fields = self.fields.text();
        let window = usize::try_from(req.page.saturating_add(1).saturating_mul(req.size))
            .unwrap_or(usize::MAX);
        let mut used = all_words.len();
        loop {
            let (text, terms) = if used == 0 {
                (None, HashSet::new())
            } else {
                let (q, t) = self.text_query(
                    &searcher,
                    &fields,
                    &all_words[..used],
                    used == all_words.len(),
                )?;
                (Some(q), t)
            };
            let query = Self::combine(text.as_deref(), self.filter_query(req, None));
            let collector = PageCollector {
                window,
                sort: req.sort,
                fields: self.fields,
                facets: true,
            };
            let page = searcher.search(query.as_ref(), &collector)?;
            if page.total == 0 && used > 1 {
                used -= 1;
                continue;
            }
            let mut facets = page.facets;
            // Disjunctive counts: a selected facet counts its values without its own filter.
            for (dim, selected) in [
                (Dim::City, !req.filters.cities.is_empty()),
                (Dim::Type, !req.filters.types.is_empty()),
                (Dim::Status, !req.filters.statuses.is_empty()),
            ] {
                if !selected {
                    continue;
                }
                let q = Self::combine(text.as_deref(), self.filter_query(req, Some(dim)));
                let other = searcher.search(
                    q.as_ref(),
                    &PageCollector {
                        window: 0,
                        sort: req.sort,
                        fields: self.fields,
                        facets: true,
                    },
                )?;
                match dim {
                    Dim::City => facets.city = other.facets.city,
                    Dim::Type => facets.event_type = other.facets.event_type,
                    Dim::Status => facets.status = other.facets.status,
                }
            }
            let start = usize::try_from(req.page.saturating_mul(req.size)).unwrap_or(usize::MAX);
            let mut hits = Vec::new();
            for (_, address) in page.top.into_iter().skip(start) {
                let event = self.load(&searcher, address)?;
                let name = highlight(&event.name, &terms, None);
                let description = event
                    .description
                    .as_deref()
                    .map(|d| highlight(d, &terms, Some(CROP_CHARS)));
                hits.push(Hit::new(&event, name, description));
            }
            return Ok(SearchResults {
                total_hits: page.total,
                page: req.page,
                size: req.size,
                matched_words: all_words[..used].to_vec(),
                hits,
                facets,
            });
        }
    }

    fn suggest(&self, q: &str, now_ms: i64, limit: usize) -> tantivy::Result<Suggestions> {
        let searcher = self.reader.searcher();
        let mut all_words = words(q);
        all_words.truncate(MAX_QUERY_WORDS);
        if all_words.is_empty() {
            return Ok(Suggestions {
                names: Vec::new(),
                cities: Vec::new(),
            });
        }
        let req = SearchRequest::new(q, now_ms);
        let filters = self.filter_query(&req, None);
        let (names_q, terms) =
            self.text_query(&searcher, &[(self.fields.name, 3)], &all_words, true)?;
        let page = searcher.search(
            Self::combine(Some(names_q.as_ref()), filters).as_ref(),
            &PageCollector {
                window: limit * 4,
                sort: Sort::Relevance,
                fields: self.fields,
                facets: false,
            },
        )?;
        let mut names = Vec::new();
        let mut seen = HashSet::new();
        for (_, address) in page.top {
            let event = self.load(&searcher, address)?;
            if names.len() < limit && seen.insert(event.name.to_lowercase()) {
                names.push(highlight(&event.name, &terms, None));
            }
        }
        let (cities_q, _) =
            self.text_query(&searcher, &[(self.fields.city_text, 2)], &all_words, true)?;
        let cities_page = searcher.search(
            Self::combine(Some(cities_q.as_ref()), self.filter_query(&req, None)).as_ref(),
            &PageCollector {
                window: 0,
                sort: Sort::Relevance,
                fields: self.fields,
                facets: true,
            },
        )?;
        let mut cities: Vec<(String, u64)> = cities_page.facets.city.into_iter().collect();
        cities.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(Suggestions {
            names,
            cities: cities.into_iter().take(limit).map(|(c, _)| c).collect(),
        })
    }

    fn load(&self, searcher: &Searcher, address: DocAddress) -> tantivy::Result<IndexedEvent> {
        let doc: TantivyDocument = searcher.doc(address)?;
        let json = doc
            .get_first(self.fields.doc)
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        serde_json::from_str(json)
            .map_err(|e| tantivy::TantivyError::InternalError(format!("stored event: {e}")))
    }
}

/// Longest cropped description, in characters.
const CROP_CHARS: usize = 160;

/// `text` (cropped to about `crop` characters around its first match) with the words that
/// are one of `terms` marked.
pub(crate) fn highlight(text: &str, terms: &HashSet<String>, crop: Option<usize>) -> Highlight {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut marks: Vec<(usize, usize)> = Vec::new();
    while let Some(t) = stream.next() {
        if terms.contains(&t.text) {
            marks.push((t.offset_from, t.offset_to));
        }
    }
    let (mut start, mut end) = (0, text.len());
    if let Some(limit) = crop
        && text.chars().count() > limit
    {
        let first = marks.first().map_or(0, |m| m.0);
        // Start a little before the first match, at a word boundary.
        let mut s = first.saturating_sub(limit / 4);
        while s > 0 && !text.is_char_boundary(s) {
            s -= 1;
        }
        if s > 0 {
            s = text[..s].rfind(char::is_whitespace).map_or(0, |i| i + 1);
        }
        let mut e = s;
        for (count, (i, c)) in text[s..].char_indices().enumerate() {
            if count >= limit {
                break;
            }
            e = s + i + c.len_utf8();
        }
        if e < text.len()
            && let Some(space) = text[s..e].rfind(char::is_whitespace)
            && space > 0
        {
            e = s + space;
        }
        start = s;
        end = e;
    }
    let mut out_text = String::new();
    let mut html = String::new();
    let mut ranges = Vec::new();
    if start > 0 {
        out_text.push('…');
        html.push('…');
    }
    let mut pos = start;
    for &(from, to) in marks.iter().filter(|m| m.0 >= start && m.1 <= end) {
        out_text.push_str(&text[pos..from]);
        escape_into(&mut html, &text[pos..from]);
        let begin = out_text.chars().count();
        out_text.push_str(&text[from..to]);
        ranges.push([begin, out_text.chars().count()]);
        html.push_str("<mark>");
        escape_into(&mut html, &text[from..to]);
        html.push_str("</mark>");
        pos = to;
    }
    out_text.push_str(&text[pos..end]);
    escape_into(&mut html, &text[pos..end]);
    if end < text.len() {
        out_text.push('…');
        html.push('…');
    }
    Highlight {
        text: out_text,
        html,
        ranges,
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// A hit's place in the order: larger first. The last part is the event id (UUIDv7: its
/// creation time first), smaller first, so that no two hits tie and every replica orders them
/// alike whatever its segments.
type Key = (i64, i64, i64, std::cmp::Reverse<(u64, u64)>);

/// Collects the exact count, the first `window` hits in order, and facet counts.
struct PageCollector {
    window: usize,
    sort: Sort,
    fields: Fields,
    facets: bool,
}

struct PageFruit {
    total: u64,
    top: Vec<(Key, DocAddress)>,
    facets: Facets,
}

struct PageSegment {
    segment: u32,
    window: usize,
    sort: Sort,
    facets: bool,
    total: u64,
    heap: BinaryHeap<std::cmp::Reverse<(Key, u32)>>,
    date: tantivy::columnar::Column<i64>,
    price: tantivy::columnar::Column<i64>,
    order: tantivy::columnar::Column<u64>,
    order_low: tantivy::columnar::Column<u64>,
    status: Option<tantivy::columnar::StrColumn>,
    city: Option<tantivy::columnar::StrColumn>,
    event_type: Option<tantivy::columnar::StrColumn>,
    status_rank: Vec<i64>,
    city_counts: Vec<u64>,
    type_counts: Vec<u64>,
    status_counts: Vec<u64>,
    month_counts: BTreeMap<i64, u64>,
}

fn status_rank(status: &str) -> i64 {
    match status {
        "ON_SALE" => 3,
        "UPCOMING" => 2,
        "SOLD_OUT" => 1,
        _ => 0,
    }
}

fn ord_of(column: Option<&tantivy::columnar::StrColumn>, doc: DocId) -> Option<usize> {
    column
        .and_then(|c| c.term_ords(doc).next())
        .and_then(|o| usize::try_from(o).ok())
}

fn count_ord(counts: &mut [u64], ord: Option<usize>) {
    if let Some(slot) = ord.and_then(|o| counts.get_mut(o)) {
        *slot += 1;
    }
}

fn dictionary_len(column: Option<&tantivy::columnar::StrColumn>) -> usize {
    column.map_or(0, |c| c.num_terms())
}

fn strings_of(
    column: Option<&tantivy::columnar::StrColumn>,
    counts: &[u64],
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Some(column) = column else {
        return out;
    };
    let mut s = String::new();
    for (ord, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        s.clear();
        if column.ord_to_str(ord as u64, &mut s).unwrap_or(false) {
            *out.entry(s.clone()).or_insert(0) += n;
        }
    }
    out
}

/// The month of epoch milliseconds (UTC) as a sortable number `year · 12 + month - 1`, by
/// Howard Hinnant's civil-from-days (no calendar lookups: it runs for every hit).
fn month_of(ms: i64) -> i64 {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    year * 12 + month - 1
}

fn month_label(m: i64) -> String {
    format!("{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1)
}

impl Collector for PageCollector {
    type Fruit = PageFruit;
    type Child = PageSegment;

    fn for_segment(&self, segment: u32, reader: &SegmentReader) -> tantivy::Result<PageSegment> {
        let fast = reader.fast_fields();
        let status = fast.str("status")?;
        let city = fast.str("city")?;
        let event_type = fast.str("type")?;
        let mut status_rank_of = Vec::new();
        if let Some(c) = &status {
            let mut s = String::new();
            for ord in 0..c.num_terms() as u64 {
                s.clear();
                c.ord_to_str(ord, &mut s)?;
                status_rank_of.push(status_rank(&s));
            }
        }
        let _ = self.fields;
        Ok(PageSegment {
            segment,
            window: self.window,
            sort: self.sort,
            facets: self.facets,
            total: 0,
            heap: BinaryHeap::new(),
            date: fast.i64("date")?,
            price: fast.i64("price")?,
            order: fast.u64("order")?,
            order_low: fast.u64("order_low")?,
            city_counts: vec![0; dictionary_len(city.as_ref())],
            type_counts: vec![0; dictionary_len(event_type.as_ref())],
            status_counts: vec![0; dictionary_len(status.as_ref())],
            status,
            city,
            event_type,
            status_rank: status_rank_of,
            month_counts: BTreeMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.sort == Sort::Relevance && self.window > 0
    }

    fn merge_fruits(&self, fruits: Vec<PageFruit>) -> tantivy::Result<PageFruit> {
        let mut total = 0;
        let mut top = Vec::new();
        let mut facets = Facets::default();
        for f in fruits {
            total += f.total;
            top.extend(f.top);
            for (into, from) in [
                (&mut facets.city, f.facets.city),
                (&mut facets.event_type, f.facets.event_type),
                (&mut facets.status, f.facets.status),
                (&mut facets.month, f.facets.month),
            ] {
                for (k, v) in from {
                    *into.entry(k).or_insert(0) += v;
                }
            }
        }
        top.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        top.truncate(self.window);
        Ok(PageFruit { total, top, facets })
    }
}

impl SegmentCollector for PageSegment {
    type Fruit = PageFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.total += 1;
        let status_ord = ord_of(self.status.as_ref(), doc);
        if self.facets {
            count_ord(&mut self.city_counts, ord_of(self.city.as_ref(), doc));
            count_ord(&mut self.type_counts, ord_of(self.event_type.as_ref(), doc));
            count_ord(&mut self.status_counts, status_ord);
        }
        let date = self.date.first(doc).unwrap_or(0);
        if self.facets {
            *self.month_counts.entry(month_of(date)).or_insert(0) += 1;
        }
        if self.window == 0 {
            return;
        }
        let rank = status_ord
            .and_then(|o| self.status_rank.get(o).copied())
            .unwrap_or(0);
        let order = std::cmp::Reverse((
            self.order.first(doc).unwrap_or(u64::MAX),
            self.order_low.first(doc).unwrap_or(u64::MAX),
        ));
        let key: Key = match self.sort {
            Sort::Relevance => {
                #[allow(clippy::cast_possible_truncation)]
                let relevance = (f64::from(score) * 10.0).round() as i64;
                (relevance, rank, -date, order)
            }
            Sort::DateAsc => (-date, rank, 0, order),
            Sort::DateDesc => (date, rank, 0, order),
            Sort::PriceAsc => (-self.price.first(doc).unwrap_or(0), rank, -date, order),
            Sort::PriceDesc => (self.price.first(doc).unwrap_or(0), rank, -date, order),
        };
        let entry = std::cmp::Reverse((key, u32::MAX - doc));
        if self.heap.len() < self.window {
            self.heap.push(entry);
        } else if let Some(min) = self.heap.peek()
            && entry < *min
        {
            self.heap.pop();
            self.heap.push(entry);
        }
    }

    fn harvest(self) -> PageFruit {
        let mut month = BTreeMap::new();
        for (m, n) in &self.month_counts {
            month.insert(month_label(*m), *n);
        }
        let facets = Facets {
            city: strings_of(self.city.as_ref(), &self.city_counts),
            event_type: strings_of(self.event_type.as_ref(), &self.type_counts),
            status: strings_of(self.status.as_ref(), &self.status_counts),
            month,
        };
        let segment = self.segment;
        let top = self
            .heap
            .into_iter()
            .map(|std::cmp::Reverse((key, d))| (key, DocAddress::new(segment, u32::MAX - d)))
            .collect();
        PageFruit {
            total: self.total,
            top,
            facets,
        }
    }
}

/// What the writer thread is asked to do.
struct Apply {
    stream: Stream,
    batch: Vec<(u64, Option<Change>)>,
    reply: oneshot::Sender<anyhow::Result<()>>,
}

/// The tantivy implementation of [`EventIndex`]: on disk in a versioned directory, or in
/// memory; one writer thread applies batches, each in one commit that also records the bus
/// positions reached.
pub struct TantivyIndex {
    searchable: Arc<Searchable>,
    positions: Arc<Mutex<Positions>>,
    writer: std::sync::mpsc::SyncSender<Apply>,
    fresh: bool,
}

impl TantivyIndex {
    /// An index in memory (empty: it is built from the stream).
    ///
    /// # Errors
    /// When the writer cannot start.
    pub fn in_memory(heap_mb: usize) -> anyhow::Result<Self> {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        Self::start(index, fields, true, heap_mb)
    }

    /// The index under `dir` (`dir/index-v<SCHEMA_VERSION>`), created empty when missing or of
    /// another schema version (other versions' directories are removed).
    ///
    /// # Errors
    /// When the directory cannot be created or read.
    pub fn open(dir: &Path, heap_mb: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let current = format!("index-v{SCHEMA_VERSION}");
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("index-v") && name != current {
                tracing::info!(directory = %name, "removing a search index of another schema version");
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        let path: PathBuf = dir.join(current);
        let (schema, fields) = schema();
        let existing = if path.join("meta.json").exists() {
            match Index::open_in_dir(&path) {
                Ok(index) if index.schema() == schema => Some(index),
                Ok(_) | Err(_) => {
                    tracing::warn!(path = %path.display(), "unreadable search index; rebuilding from the stream");
                    None
                }
            }
        } else {
            None
        };
        let (index, fresh) = match existing {
            Some(index) => (index, false),
            None => {
                if path.exists() {
                    std::fs::remove_dir_all(&path)?;
                }
                std::fs::create_dir_all(&path)?;
                (Index::create_in_dir(&path, schema)?, true)
            }
        };
        Self::start(index, fields, fresh, heap_mb)
    }

    fn start(index: Index, fields: Fields, fresh: bool, heap_mb: usize) -> anyhow::Result<Self> {
        index.tokenizers().register(TOKENIZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let Committed { positions, pending } = Committed::of(&index)?;
        let searchable = Arc::new(Searchable {
            index,
            reader,
            fields,
        });
        let docs = load_all(&searchable)?;
        let writer: IndexWriter = searchable
            .index
            .writer_with_num_threads(1, heap_mb * 1_000_000)?;
        let positions = Arc::new(Mutex::new(positions));
        let (tx, rx) = std::sync::mpsc::sync_channel::<Apply>(4);
        let thread = WriterThread {
            searchable: searchable.clone(),
            writer,
            docs,
            pending,
            positions: positions.clone(),
        };
        std::thread::Builder::new()
            .name("search-writer".into())
            .spawn(move || thread.run(&rx))?;
        Ok(Self {
            searchable,
            positions,
            writer: tx,
            fresh,
        })
    }

    /// Whether the index was created empty (so its feed must start from the beginning).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }
}

/// Most figures kept for events not indexed yet. One whose event was deleted before its
/// figure came is never claimed, so the oldest events' figures (the smallest UUIDv7s) give way.
const PENDING_MAX: usize = 4_096;

/// What each commit records beside the documents: the bus positions it reflects and the
/// figures of events not indexed yet, so that neither is lost to a restart.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Committed {
    #[serde(flatten)]
    positions: Positions,
    #[serde(default)]
    pending: BTreeMap<Uuid, evently_bus::catalog::Availability>,
}

impl Committed {
    /// What the last commit of `index` recorded (nothing for a new index).
    fn of(index: &Index) -> anyhow::Result<Self> {
        Ok(index
            .load_metas()?
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default())
    }
}

fn load_all(searchable: &Searchable) -> anyhow::Result<HashMap<Uuid, IndexedEvent>> {
    let searcher = searchable.reader.searcher();
    let mut docs = HashMap::new();
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        let alive = segment.alive_bitset();
        for doc in 0..segment.max_doc() {
            if alive.is_some_and(|a| !a.is_alive(doc)) {
                continue;
            }
            let event = searchable.load(
                &searcher,
                DocAddress::new(u32::try_from(ord).unwrap_or(u32::MAX), doc),
            )?;
            docs.insert(event.event_id, event);
        }
    }
    Ok(docs)
}

struct WriterThread {
    searchable: Arc<Searchable>,
    writer: IndexWriter,
    docs: HashMap<Uuid, IndexedEvent>,
    /// Figures for events not indexed yet (booking's stream can run ahead of events'),
    /// recorded in each commit.
    pending: BTreeMap<Uuid, evently_bus::catalog::Availability>,
    positions: Arc<Mutex<Positions>>,
}

impl WriterThread {
    fn run(mut self, rx: &std::sync::mpsc::Receiver<Apply>) {
        while let Ok(apply) = rx.recv() {
            let result = self.apply(apply.stream, apply.batch);
            if result.is_err() {
                // Drop what this batch staged; it is delivered again.
                let _ = self.writer.rollback();
                if let Ok(docs) = load_all(&self.searchable) {
                    self.docs = docs;
                }
                if let Ok(committed) = Committed::of(&self.searchable.index) {
                    self.pending = committed.pending;
                }
            }
            let _ = apply.reply.send(result);
        }
    }

    fn apply(&mut self, stream: Stream, batch: Vec<(u64, Option<Change>)>) -> anyhow::Result<()> {
        let mut positions = *self
            .positions
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let reached = positions.get(stream);
        let mut touched: HashSet<Uuid> = HashSet::new();
        let mut last = reached;
        for (position, change) in batch {
            if position <= reached {
                continue;
            }
            last = last.max(position);
            if let Some(change) = change {
                self.change(change, &mut touched);
            }
        }
        if last == reached {
            return Ok(());
        }
        let f = self.searchable.fields;
        for id in &touched {
            self.writer
                .delete_term(Term::from_field_text(f.id, &id.to_string()));
            if let Some(event) = self.docs.get(id) {
                self.writer.add_document(document(&f, event)?)?;
            }
        }
        positions.set(stream, last);
        let committed = Committed {
            positions,
            pending: std::mem::take(&mut self.pending),
        };
        let payload = serde_json::to_string(&committed);
        self.pending = committed.pending;
        let mut commit = self.writer.prepare_commit()?;
        commit.set_payload(&payload?);
        commit.commit()?;
        self.searchable.reader.reload()?;
        *self
            .positions
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))? = positions;
        Ok(())
    }

    fn change(&mut self, change: Change, touched: &mut HashSet<Uuid>) {
        match change {
            Change::Upsert(snapshot, version) => {
                let known = self.docs.get(&snapshot.event_id);
                if known.is_some_and(|k| k.version > version) {
                    return;
                }
                let mut event = IndexedEvent::from_snapshot(&snapshot, version, known);
                if let Some(a) = self.pending.remove(&snapshot.event_id)
                    && a.version > event.inventory_version
                {
                    event.available = a.available;
                    event.inventory_version = a.version;
                }
                touched.insert(event.event_id);
                self.docs.insert(event.event_id, event);
            }
            Change::Status(id, status, version) => {
                if let Some(e) = self.docs.get_mut(&id)
                    && e.version <= version
                {
                    e.status = status;
                    e.version = version;
                    touched.insert(id);
                }
            }
            Change::Delete(id) => {
                self.docs.remove(&id);
                self.pending.remove(&id);
                touched.insert(id);
            }
            Change::Availability(c) => match self.docs.get_mut(&c.event_id) {
                Some(e) => {
                    if c.availability.version > e.inventory_version {
                        e.available = c.availability.available;
                        e.inventory_version = c.availability.version;
                        touched.insert(c.event_id);
                    }
                }
                None => {
                    let newer = self
                        .pending
                        .get(&c.event_id)
                        .is_none_or(|p| p.version < c.availability.version);
                    if newer {
                        self.pending.insert(c.event_id, c.availability);
                        if self.pending.len() > PENDING_MAX {
                            self.pending.pop_first();
                        }
                    }
                }
            },
        }
    }
}

fn document(f: &Fields, e: &IndexedEvent) -> anyhow::Result<TantivyDocument> {
    let mut doc = TantivyDocument::default();
    doc.add_text(f.id, e.event_id.to_string());
    doc.add_text(f.name, &e.name);
    for tag in &e.tags {
        doc.add_text(f.tags_text, tag);
        doc.add_text(f.tag, tag.trim().to_lowercase());
    }
    doc.add_text(f.venue, &e.venue);
    if let Some(city) = &e.city {
        doc.add_text(f.city_text, city);
        doc.add_text(f.city, city);
        doc.add_text(f.city_key, city.trim().to_lowercase());
    }
    if let Some(d) = &e.description {
        doc.add_text(f.description, d);
    }
    if let Some(t) = &e.event_type {
        doc.add_text(f.event_type, t);
    }
    doc.add_text(f.status, &e.status);
    doc.add_i64(f.date, e.date_ms);
    doc.add_i64(f.price, e.min_price);
    doc.add_i64(f.available, e.available);
    let (order, order_low) = e.event_id.as_u64_pair();
    doc.add_u64(f.order, order);
    doc.add_u64(f.order_low, order_low);
    doc.add_text(f.doc, serde_json::to_string(e)?);
    Ok(doc)
}

#[async_trait::async_trait]
impl EventIndex for TantivyIndex {
    async fn apply(&self, stream: Stream, batch: Vec<(u64, Option<Change>)>) -> anyhow::Result<()> {
        let (reply, answer) = oneshot::channel();
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            writer.send(Apply {
                stream,
                batch,
                reply,
            })
        })
        .await?
        .map_err(|_| anyhow::anyhow!("the search writer stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the search writer stopped"))?
    }

    fn position(&self, stream: Stream) -> u64 {
        self.positions.lock().map(|p| p.get(stream)).unwrap_or(0)
    }

    fn search(&self, request: &SearchRequest) -> Result<SearchResults, SearchError> {
        self.searchable
            .search(request)
            .map_err(|e| SearchError::Engine(e.into()))
    }

    fn suggest(&self, q: &str, now_ms: i64, limit: usize) -> Result<Suggestions, SearchError> {
        self.searchable
            .suggest(q, now_ms, limit)
            .map_err(|e| SearchError::Engine(e.into()))
    }

    fn len(&self) -> u64 {
        self.searchable.reader.searcher().num_docs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_match_the_calendar() {
        for (ms, label) in [
            (0, "1970-01"),
            (951_782_400_000, "2000-02"), // 2000-02-29
            (951_868_799_999, "2000-02"),
            (951_868_800_000, "2000-03"),
            (1_893_455_999_999, "2029-12"),
            (-1, "1969-12"),
        ] {
            assert_eq!(month_label(month_of(ms)), label, "{ms}");
        }
    }

    #[test]
    fn typos_follow_meilisearch() {
        assert_eq!(typos("fetsival", "festival", false), 1);
        assert_eq!(typos("metalica", "metallica", false), 1);
        assert_eq!(typos("netallica", "metallica", false), 2);
        assert_eq!(typos("phil", "philharmonic", true), 0);
        assert_eq!(typos("phil", "philharmonic", false), 8);
        assert_eq!(typo_budget("jazz"), 0);
        assert_eq!(typo_budget("metal"), 1);
        assert_eq!(typo_budget("metallica"), 2);
        assert_eq!(typo_budget("20300"), 0);
    }

    #[test]
    fn highlights_are_escaped_and_cropped() {
        let terms: HashSet<String> = ["needle".to_owned()].into_iter().collect();
        let text = format!("{} needle <b>tail</b>", "word ".repeat(100));
        let h = highlight(&text, &terms, Some(40));
        assert!(h.text.starts_with('…'), "{}", h.text);
        assert!(
            h.html.contains("<mark>needle</mark> &lt;b&gt;tail"),
            "{}",
            h.html
        );
        let [start, end] = h.ranges[0];
        let marked: String = h.text.chars().skip(start).take(end - start).collect();
        assert_eq!(marked, "needle");
    }
}
