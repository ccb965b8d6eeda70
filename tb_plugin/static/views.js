// The tab's views, in update order; the page lays them out by each view's slot (view.js).
// Adding a view: one new file with a CanvasView subclass, and one line here.

import {AcrossExamples} from "./aggregate.js";
import {RunComparison} from "./compare.js";
import {FlipExplanation} from "./explain.js";
import {FlowView} from "./flow.js";
import {HeadDetail} from "./headdetail.js";
import {HeadGrid} from "./headgrid.js";
import {TokenInfluence} from "./influence.js";
import {EdgeLifetimes} from "./lifetimes.js";
import {Timeline} from "./timeline.js";
import {checkView} from "./view.js";

export const VIEWS = [
  Timeline,
  EdgeLifetimes,
  FlowView,
  HeadGrid,
  HeadDetail,
  TokenInfluence,
  AcrossExamples,
  FlipExplanation,
  RunComparison,
].map(checkView);
