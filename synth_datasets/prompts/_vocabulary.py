"""A small vocabulary of simple English words by part of speech, for :class:`RandomWords`.

Source: written for synth-datasets (CC0) from common English words a young child knows, in the
spirit of the ~1,500 basic words TinyStories (Eldan & Li, 2023) drew from; the words are common
dictionary words, not copied from any list. Verbs are in the base form, nouns singular.
"""

NOUNS = tuple("""
apple ball balloon banana bath bear bed bee bell bike bird blanket boat book boot bottle box boy
bread bridge brother brush bucket bug bus butterfly cake camera candle candy cap car carrot castle
cat chair cheese chicken city clock cloud coat cookie cow crayon crown cup dad dinosaur dog doll
door dragon dream drum duck egg elephant farm feather fence field fire fish flag flower forest fox
friend frog garden gate ghost gift girl glass grandma hat heart hill horse house ice island jar
jungle key king kite kitten lamp leaf lemon lion map mirror monkey moon mountain mouse mud nest
night ocean owl park party pencil penguin piano picnic pig pillow pirate pizza plane planet pond
puppy puzzle queen rabbit rain rainbow river road robot rock rocket rope sand school sea shadow
sheep shell ship shoe sister sky snail snake snow sock song spoon star stick stone storm sun swing
table teacher teddy tent tiger toy train treasure tree truck turtle umbrella valley wagon wall
water wave whale wind window wing wolf worm
""".split())

VERBS = tuple("""
ask bake bark bounce build carry catch chase clap climb collect cook count crawl cry dance dig
draw dream drink drive eat explore fall feed find fix float fly fold follow giggle give glow grow
help hide hold hop hug hunt jump kick kiss knock laugh learn lift listen look lose make march melt
mix move open paint pick plant play pour pull push race read remember rest ride roar roll run
sail save search share shine shout sing sit skip sleep slide smell smile sneeze splash spin stack
swim swing talk taste throw tickle tidy touch travel trip visit wait walk wash watch wave whisper
win wish wonder write yawn
""".split())

ADJECTIVES = tuple("""
angry bad big bitter blue bouncy brave bright brown bumpy busy calm careful cheerful clean clever
cold colorful cozy curious cute dark deep dirty dizzy dry eager early fast fluffy friendly funny
fuzzy gentle giant glad golden good green grumpy happy heavy helpful hungry icy kind large lazy
light little lonely long loud lucky magic messy muddy new nice noisy old orange pink playful
polite proud purple quick quiet rainy red round sad scared shiny short shy silly sleepy slow small
smooth soft sparkly spicy sticky strange strong sunny sweet tall tiny tired warm wet white wild
windy wise yellow young
""".split())

VOCABULARY = {"noun": NOUNS, "verb": VERBS, "adjective": ADJECTIVES}
