//! Words of an event's name and description, and their TF-IDF vectors (Lucene's
//! MoreLikeThis picks "interesting" terms the same way): lowercase alphanumeric tokens, a
//! small stop list, term frequency `1 + ln(tf)`, inverse document frequency `ln(N / df)`,
//! vectors normalised to length 1 so that their dot product is the cosine.

use std::collections::HashMap;

/// Words too common to say anything about an event.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "he", "in", "is", "it",
    "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with", "you",
    "your", "our", "we", "all", "live", "night", "tour", "event", "tickets", "der", "die", "das",
    "und", "le", "la", "les", "et",
];

/// The tokens of `text`: lowercase runs of letters and digits of two characters or more,
/// stop words left out.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 2)
        .map(str::to_lowercase)
        .filter(|t| !STOP_WORDS.contains(&t.as_str()))
        .collect()
}

/// A sparse vector: `(term id, weight)` sorted by term id, of length 1 (or empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TermVector(Vec<(u32, f32)>);

impl TermVector {
    /// The cosine of two vectors (their dot product, as both have length 1).
    pub fn cosine(&self, other: &TermVector) -> f64 {
        let (mut i, mut j, mut dot) = (0, 0, 0.0f64);
        while let (Some(&(ta, wa)), Some(&(tb, wb))) = (self.0.get(i), other.0.get(j)) {
            match ta.cmp(&tb) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    dot += f64::from(wa) * f64::from(wb);
                    i += 1;
                    j += 1;
                }
            }
        }
        dot.clamp(0.0, 1.0)
    }

    /// The `n` heaviest term ids, heaviest first.
    pub fn top_terms(&self, n: usize) -> Vec<u32> {
        let mut terms = self.0.clone();
        terms.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        terms.into_iter().take(n).map(|(t, _)| t).collect()
    }

    /// The vector's terms.
    pub fn terms(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().map(|(t, _)| *t)
    }
}

/// Term ids and document frequencies of a corpus (every event's name and description).
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    ids: HashMap<String, u32>,
    df: Vec<u32>,
    docs: u32,
}

impl Vocabulary {
    /// The vocabulary of `documents` (each a list of tokens).
    pub fn build<'a>(documents: impl IntoIterator<Item = &'a [String]>) -> Self {
        let mut vocabulary = Vocabulary::default();
        for doc in documents {
            vocabulary.docs += 1;
            let mut seen: Vec<u32> = Vec::new();
            for token in doc {
                let next = u32::try_from(vocabulary.ids.len()).unwrap_or(u32::MAX);
                let id = *vocabulary.ids.entry(token.clone()).or_insert(next);
                if id as usize == vocabulary.df.len() {
                    vocabulary.df.push(0);
                }
                if !seen.contains(&id) {
                    seen.push(id);
                    vocabulary.df[id as usize] += 1;
                }
            }
        }
        vocabulary
    }

    /// `ln(N / df)` of a term; 0 for a term in every document.
    fn idf(&self, id: u32) -> f64 {
        let df = self.df.get(id as usize).copied().unwrap_or(0).max(1);
        (f64::from(self.docs.max(1)) / f64::from(df)).ln().max(0.0)
    }

    /// The normalised TF-IDF vector of `doc`; terms outside the vocabulary are ignored.
    pub fn vector(&self, doc: &[String]) -> TermVector {
        let mut tf: HashMap<u32, u32> = HashMap::new();
        for token in doc {
            if let Some(&id) = self.ids.get(token) {
                *tf.entry(id).or_default() += 1;
            }
        }
        let mut weights: Vec<(u32, f64)> = tf
            .into_iter()
            .map(|(id, n)| (id, (1.0 + f64::from(n).ln()) * self.idf(id)))
            .filter(|(_, w)| *w > 0.0)
            .collect();
        let norm = weights.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
        if norm == 0.0 {
            return TermVector::default();
        }
        weights.sort_by_key(|(id, _)| *id);
        #[expect(
            clippy::cast_possible_truncation,
            reason = "weights in [0, 1] need no more than f32 precision"
        )]
        TermVector(
            weights
                .into_iter()
                .map(|(id, w)| (id, (w / norm) as f32))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Vec<String> {
        tokens(text)
    }

    #[test]
    fn tokens_are_lowercase_words_without_stop_words() {
        assert_eq!(
            tokens("The Jazz-Night at Blue Note: Miles & Coltrane, 2026!"),
            ["jazz", "blue", "note", "miles", "coltrane", "2026"]
        );
        assert_eq!(tokens("Zoë's Café"), ["zoë", "café"]);
    }

    #[test]
    fn cosine_is_one_for_the_same_text_and_zero_without_shared_terms() {
        let docs = [
            doc("berlin jazz quartet"),
            doc("hamburg techno rave"),
            doc("jazz trio evening"),
        ];
        let vocabulary = Vocabulary::build(docs.iter().map(Vec::as_slice));
        let a = vocabulary.vector(&docs[0]);
        let b = vocabulary.vector(&docs[1]);
        let c = vocabulary.vector(&docs[2]);

        assert!((a.cosine(&a) - 1.0).abs() < 1e-6);
        assert!(a.cosine(&b).abs() < 1e-9);
        assert!(a.cosine(&c) > 0.0 && a.cosine(&c) < 0.5);
    }

    #[test]
    fn a_term_in_every_document_weighs_nothing() {
        let docs = [doc("festival rock"), doc("festival pop")];
        let vocabulary = Vocabulary::build(docs.iter().map(Vec::as_slice));

        let rock = vocabulary.vector(&docs[0]);
        let pop = vocabulary.vector(&docs[1]);

        assert!(rock.cosine(&pop).abs() < 1e-9, "only `festival` is shared");
        assert_eq!(rock.terms().count(), 1);
    }

    #[test]
    fn rarer_terms_weigh_more() {
        let docs = [
            doc("symphony orchestra"),
            doc("symphony brass"),
            doc("symphony strings"),
        ];
        let vocabulary = Vocabulary::build(docs.iter().map(Vec::as_slice));

        let v = vocabulary.vector(&docs[0]);

        let orchestra = vocabulary.ids["orchestra"];
        assert_eq!(v.top_terms(1), [orchestra]);
    }
}
